"""An LSTM language model as a transformers model, so the `Trainer` trains it like the GPT.

The network: embedding -> LSTM layers -> dropout -> the embedding matrix again as the output layer (tied
weights, Press & Wolf 2017), plus an output bias. `cell` swaps the recurrent layer for a GRU or a vanilla RNN
(`rnn_tanh`, `rnn_relu`): the same model otherwise, for the vanishing-gradient comparison.
`forward(input_ids, labels=...)` returns `.loss` (next-token cross-entropy; the labels are shifted inside, as in
GPT2LMHeadModel) and `.logits`.

A saved folder loads anywhere with

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

because `save_pretrained` copies this file next to the weights (config.json's `auto_map` points at it). So this
file imports nothing but torch and transformers. Importing it also registers the classes with the Auto
classes of this process, where no `trust_remote_code` is needed.
"""

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

CELLS = {"lstm": (nn.LSTM, {}), "gru": (nn.GRU, {}), "rnn_tanh": (nn.RNN, {"nonlinearity": "tanh"}),
         "rnn_relu": (nn.RNN, {"nonlinearity": "relu"})}


class LSTMConfig(PreTrainedConfig):
    model_type = "hfrepro-lstm"

    def __init__(self, vocab_size: int = 4096, d_model: int = 256, n_layers: int = 1, dropout: float = 0.0,
                 n_positions: int = 128, cell: str = "lstm", **kwargs):
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}: use one of {', '.join(CELLS)}")
        self.cell = cell                  # lstm | gru | rnn_tanh | rnn_relu
        self.vocab_size = vocab_size
        self.d_model = d_model            # embedding and hidden size
        self.n_layers = n_layers
        self.dropout = dropout
        self.n_positions = n_positions    # the training block size: the default scoring window (an LSTM has no limit)
        super().__init__(**kwargs)


class LSTMLM(PreTrainedModel):
    config_class = LSTMConfig
    base_model_prefix = "lstm"
    accepts_loss_kwargs = False           # the loss is a mean over the batch's tokens, as the Trainer expects

    def __init__(self, config: LSTMConfig):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        kind, extra = CELLS[getattr(config, "cell", "lstm")]
        self.lstm = kind(config.d_model, config.d_model, config.n_layers, batch_first=True,
                         dropout=config.dropout if config.n_layers > 1 else 0.0, **extra)
        self.drop = nn.Dropout(config.dropout)
        self.out_bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, (nn.LSTM, nn.GRU, nn.RNN)):
            module.reset_parameters()     # torch's own: uniform in +-1/sqrt(d_model)
        elif isinstance(module, LSTMLM):
            nn.init.zeros_(module.out_bias)

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.LongTensor | None = None, inputs_embeds: torch.Tensor | None = None) -> CausalLMOutput:
        # attention_mask is accepted for right-padded batches: an LSTM reads left to right, so padding after the
        # real tokens cannot change their predictions. inputs_embeds: the embedded tokens (to take gradients
        # with respect to them).
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        h, _ = self.lstm(self.drop(x))
        logits = nn.functional.linear(self.drop(h), self.embed.weight, self.out_bias)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                               labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)


AutoConfig.register(LSTMConfig.model_type, LSTMConfig, exist_ok=True)
AutoModelForCausalLM.register(LSTMConfig, LSTMLM, exist_ok=True)
LSTMConfig.register_for_auto_class()
LSTMLM.register_for_auto_class("AutoModelForCausalLM")
