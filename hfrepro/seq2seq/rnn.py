"""GRU encoder-decoder, with and without attention, in plain torch.

The attention model is the plain model plus one thing, so that the comparison isolates the idea being reproduced:

    encoder   a bidirectional GRU reads the source: annotations h_1..h_S (forward and backward states)
    fixed     c = [h_S(forward); h_1(backward)], the whole sentence in one vector of 2 x hidden_size numbers;
              with `context_size` d: c = tanh(W_c [h_S(forward); h_1(backward)]), squeezed to d numbers
    decoder   s_0 = tanh(W_s c),  s_i = GRU([y_{i-1}; c], s_{i-1})                       (both models)
    read      attention=False  r_i = [s_i; c; y_{i-1}]: the fixed vector is all the decoder sees of the source
                                 (the RNN Encoder-Decoder of Cho et al. 2014, "RNNencdec" in Bahdanau et al.)
              attention=True   r_i = [s_i; c; y_{i-1}; a_i] with a_i = sum_j alpha_ij h_j and
                                 alpha_ij = softmax_j(s_i' W_a h_j): at every step the decoder also reads all the
                                 encoder's states, weighted by how well each matches its state
    output    p(y_i | ...) = softmax(W_o tanh(U_o r_i))

The attention is Luong et al. (2015)'s global attention with the "general" score, read after the decoder's step.
Bahdanau et al. (2014) read it before the step (from s_{i-1}) and feed it into the GRU; reading it after lets
training run the decoder GRU over the whole target in one call, which is what makes the sweep of the fixed
vector's size affordable on a CPU (docs/seq2seq.md). `attention_read="before"` is Bahdanau's order, with the same
score: a_i from s_{i-1}, then s_i = GRU([y_{i-1}; c; a_i], s_{i-1}), so the state knows what it has read; training
then steps through the target one token at a time (1.1-1.2x the time of an update, bench/seq2seq.py), and the
GRU's input grows by the read's 2 x hidden_size numbers. The fixed vector c stays in both models: attention is
added to the plain model, not swapped for its vector, and shrinking `context_size` squeezes only the plain
model's view.

The model is a `transformers.PreTrainedModel`, so `save_pretrained` / `from_pretrained` write and read a
safetensors folder with its config.json like any other model (`model_type: hfrepro-gru-seq2seq`; loading it
needs hfrepro installed, never remote code). Decoding (greedy and beam search) is at the bottom. On the CPU in
fp32 the encoder's GRU trains through `packed_bigru`: nn.GRU's weights and numbers to the bit, without the cost of
PyTorch's packed backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

ATTENTION_READS = ("after", "before")  # Luong's order (the class's default) or Bahdanau's (the budgets', since lever G)


class GRUSeq2SeqConfig(PreTrainedConfig):
    model_type = "hfrepro-gru-seq2seq"

    vocab_size: int = 4000
    embed_dim: int = 128
    hidden_size: int = 256
    attention: bool = True
    context_size: int | None = None  # size of the fixed vector c; None: the encoder's final states (2 x hidden_size)
    attention_read: str = "after"   # "after" the decoder's step (Luong), or "before" it, fed into the GRU (Bahdanau)
    dropout: float = 0.1
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    decoder_start_token_id: int | None = 1
    is_encoder_decoder: bool = True
    tie_word_embeddings: bool = False


@dataclass
class Seq2SeqOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    attentions: torch.Tensor | None = None  # [batch, target, source] (attention model only)


class GRUSeq2Seq(PreTrainedModel):
    config_class = GRUSeq2SeqConfig
    base_model_prefix = "gru_seq2seq"
    main_input_name = "input_ids"

    def __init__(self, config: GRUSeq2SeqConfig):
        super().__init__(config)
        V, E, H = config.vocab_size, config.embed_dim, config.hidden_size
        C = config.context_size or 2 * H  # the fixed vector's size
        self.embed = nn.Embedding(V, E, padding_idx=config.pad_token_id)  # one vocabulary for both languages
        self.encoder = nn.GRU(E, H, batch_first=True, bidirectional=True)
        if config.context_size:
            self.bottleneck = nn.Linear(2 * H, C)         # W_c
        self.init_state = nn.Linear(C, H)                 # W_s
        self.decoder = nn.GRU(E + C + (2 * H if self.reads_before else 0), H, batch_first=True)
        if config.attention:
            self.attn = nn.Linear(2 * H, H, bias=False)   # W_a (applied once to every annotation)
        self.pre_output = nn.Linear(H + C + E + (2 * H if config.attention else 0), E)  # U_o
        self.output = nn.Linear(E, V)                     # W_o
        self.drop = nn.Dropout(config.dropout)
        self.post_init()

    @property
    def reads_before(self) -> bool:
        """Bahdanau's order: the attention read goes into the decoder's GRU (attention models only)."""
        return bool(self.config.attention) and self.config.attention_read == "before"

    def _init_weights(self, module):
        """Keep PyTorch's default initialisation (embeddings N(0, 1), GRU and Linear uniform in +-1/sqrt(fan_in)).
        A smaller embedding scale (N(0, 0.1)) with Xavier/orthogonal weights left the decoder stuck at the
        unigram loss for hundreds of updates on this data; the defaults learn at once."""

    # --- encoder --------------------------------------------------------------------------------------
    def encode(self, input_ids, attention_mask):
        lengths = attention_mask.sum(1).clamp(min=1).cpu()
        emb = self.drop(self.embed(input_ids))
        packed = nn.utils.rnn.pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        out, h_n = packed_bigru(self.encoder, packed) if cpu_fp32_training(emb) else self.encoder(packed)
        annotations, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=input_ids.size(1))
        fixed = torch.cat([h_n[0], h_n[1]], dim=-1)  # last forward state, first backward state: [B, 2H]
        if self.config.context_size:
            fixed = torch.tanh(self.bottleneck(fixed))  # squeezed to context_size numbers
        keys = self.attn(annotations) if self.config.attention else None
        return {"annotations": annotations, "keys": keys, "mask": attention_mask.bool(), "fixed": fixed,
                "state": torch.tanh(self.init_state(fixed))}

    # --- decoder: any number of steps at once (teacher forcing), or one (decoding) ----------------------
    def decode(self, enc, prev_tokens, state):
        """prev_tokens [B, T] -> (hidden [B, T, E] before the output projection, last state [B, H], attention
        weights [B, T, S] or None)."""
        y = self.drop(self.embed(prev_tokens))
        fixed = enc["fixed"][:, None, :].expand(-1, y.size(1), -1)
        if self.reads_before:
            return self.decode_reading_before(enc, y, fixed, state)
        states, last = self.decoder(torch.cat([y, fixed], -1), state[None].contiguous())
        parts, weights = [states, fixed, y], None
        if self.config.attention:
            weights, reads = self.read(enc, states)
            parts.append(reads)
        hidden = torch.tanh(self.pre_output(self.drop(torch.cat(parts, -1))))
        return hidden, last[0], weights

    def read(self, enc, states):
        """Attention weights [B, T, S] of decoder states [B, T, H] over the annotations (alpha_ij =
        softmax_j(s_i' W_a h_j), padding excluded) and the read a_i = sum_j alpha_ij h_j [B, T, 2H]."""
        scores = torch.bmm(states, enc["keys"].transpose(1, 2))
        weights = scores.masked_fill(~enc["mask"][:, None, :], float("-inf")).softmax(-1)
        return weights, torch.bmm(weights, enc["annotations"])

    def decode_reading_before(self, enc, y, fixed, state):
        """Bahdanau's order: a_i is read with the previous state s_{i-1} and fed into the GRU,
        s_i = GRU([y_{i-1}; c; a_i], s_{i-1}), so the state knows what it has read; one step at a time."""
        g = self.decoder
        states, reads, weights = [], [], []
        for t in range(y.size(1)):
            w, a = self.read(enc, state[:, None])
            state = torch.gru_cell(torch.cat([y[:, t], fixed[:, t], a[:, 0]], -1), state,
                                   g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0)
            states.append(state)
            reads.append(a[:, 0])
            weights.append(w[:, 0])
        states, reads = torch.stack(states, 1), torch.stack(reads, 1)
        hidden = torch.tanh(self.pre_output(self.drop(torch.cat([states, fixed, y, reads], -1))))
        return hidden, state, torch.stack(weights, 1)

    def forward(self, input_ids, attention_mask=None, labels=None, decoder_input_ids=None, num_items_in_batch=None,
                **_):
        """Teacher-forced logits, and with `labels` the cross-entropy over the real (non -100) target tokens: their
        mean, or their sum / `num_items_in_batch` when the Trainer passes the count over all processes and
        accumulated batches (then the loss of 2 processes or 2 accumulated half-batches equals that of one batch)."""
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        if decoder_input_ids is None:
            decoder_input_ids = shift_right(labels, self.config.decoder_start_token_id, self.config.pad_token_id)
        enc = self.encode(input_ids, attention_mask)
        hidden, _, weights = self.decode(enc, decoder_input_ids, enc["state"])
        logits = self.output(self.drop(hidden))
        loss = None
        if labels is not None:
            flat = (logits.reshape(-1, logits.size(-1)), labels.reshape(-1))
            if num_items_in_batch is None:
                loss = F.cross_entropy(*flat, ignore_index=-100)
            else:
                loss = F.cross_entropy(*flat, ignore_index=-100, reduction="sum") / num_items_in_batch
        return Seq2SeqOutput(loss=loss, logits=logits, attentions=weights)

    def logprobs(self, enc, prev_tokens, state):
        """One decoding step: prev_tokens [B] -> (log p(next) [B, V], state [B, H], attention weights [B, S])."""
        hidden, state, w = self.decode(enc, prev_tokens[:, None], state)
        return self.output(hidden[:, 0]).log_softmax(-1), state, (None if w is None else w[:, 0])

    # --- decoding -------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, max_new_tokens: int = 128, num_beams: int = 1,
                 length_penalty: float = 1.0, return_attentions: bool = False, no_repeat_ngram_size: int = 0):
        """Greedy (num_beams=1) or beam search. Returns [B, T] token ids (padded with pad), and with
        `return_attentions` also the attention weights of each output token ([B, T, S]) when greedy.
        `no_repeat_ngram_size` n > 0: no n-gram of output tokens twice (transformers' own
        NoRepeatNGramLogitsProcessor, as in `model.generate(no_repeat_ngram_size=n)`), a guard against loops."""
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        guard = no_repeat(no_repeat_ngram_size)
        if num_beams > 1:
            return beam_search(self, input_ids, attention_mask, max_new_tokens, num_beams, length_penalty, guard)
        cfg = self.config
        enc = self.encode(input_ids, attention_mask)
        B = input_ids.size(0)
        prev = torch.full((B,), cfg.decoder_start_token_id, dtype=torch.long, device=input_ids.device)
        state, out, attns = enc["state"], [], []
        done = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
        for _ in range(max_new_tokens):
            logp, state, w = self.logprobs(enc, prev, state)
            if guard and out:
                logp = guard(torch.stack(out, 1), logp)
            prev = logp.argmax(-1).masked_fill(done, cfg.pad_token_id)
            out.append(prev)
            attns.append(w)
            done |= prev == cfg.eos_token_id
            if done.all():
                break
        ids = torch.stack(out, 1)
        if return_attentions:
            return ids, (torch.stack(attns, 1) if cfg.attention else None)
        return ids


def cpu_fp32_training(x) -> bool:
    """Where `packed_bigru` replaces nn.GRU: training on the CPU in fp32. Without gradients (decoding, the
    validation loss) PyTorch's own loop is the faster of the two, with the same numbers."""
    return torch.is_grad_enabled() and x.device.type == "cpu" and not torch.is_autocast_enabled("cpu")


def packed_bigru(gru: nn.GRU, packed):
    """`gru(packed)` for a one-layer bidirectional GRU on the CPU in fp32: the same numbers to the bit, forward and
    backward (tests/test_seq2seq.py); a seq2seq GRU update takes 10-16% less time (bench/seq2seq.py).

    PyTorch's CPU GRU projects every input at once, then takes each time step's rows with `narrow`; the backward
    of each narrow writes a zero tensor as large as the whole projection and adds its rows into it, so a batch of
    40-token sources costs 80 full-size zero-and-add passes per update (12% of a seq2seq GRU update). Here the
    projection is `split` into its steps once (its backward: one concatenation), and each step is PyTorch's GRU cell
    with the same operations in the same order: r = sigmoid(W_hr h + b_hr + W_ir x + b_ir), z likewise,
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (h - n) * z + n. A packed batch is sorted longest first
    and holds `batch_sizes[t]` rows at step t: the forward direction drops the rows that ended, the backward
    direction starts from the shortest step and adds rows as it goes back."""
    data, sizes = packed.data, packed.batch_sizes.tolist()
    h0 = data.new_zeros(sizes[0], gru.hidden_size)
    outputs, finals = [], []
    for suffix, steps in (("", range(len(sizes))), ("_reverse", range(len(sizes) - 1, -1, -1))):
        w = [getattr(gru, f"{name}_l0{suffix}") for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh")]
        x = F.linear(data, w[0], w[1]).split(sizes, 0)
        h, rows, ended, out = h0[:sizes[steps[0]]], sizes[steps[0]], [], []
        for t in steps:
            if sizes[t] < rows:    # forward: rows whose sequence ended keep their last state
                ended.append(h[sizes[t]:])
                h = h[:sizes[t]]
            elif sizes[t] > rows:  # backward: rows whose sequence starts here join with the initial state
                h = torch.cat([h, h0[rows:sizes[t]]], 0)
            rows = sizes[t]
            ig, hg = x[t].unsafe_chunk(3, 1), F.linear(h, w[2], w[3]).unsafe_chunk(3, 1)
            r, z = hg[0].add_(ig[0]).sigmoid_(), hg[1].add_(ig[1]).sigmoid_()
            n = ig[2].add(hg[2].mul_(r)).tanh_()
            h = (h - n).mul_(z).add_(n)
            out.append(h)
        if suffix:
            out.reverse()
        outputs.append(torch.cat(out, 0))
        finals.append(torch.cat([h, *reversed(ended)], 0))
    h_n = torch.stack(finals, 0)
    if packed.unsorted_indices is not None:
        h_n = h_n.index_select(1, packed.unsorted_indices)
    return packed._replace(data=torch.cat(outputs, -1)), h_n


def shift_right(labels, start_id: int, pad_id: int):
    """Decoder inputs from labels: <start> y_1 ... y_{n-1} (label padding -100 becomes pad)."""
    dec = labels.new_full(labels.shape, pad_id)
    dec[:, 1:] = labels[:, :-1]
    dec[:, 0] = start_id
    return dec.masked_fill(dec == -100, pad_id)


def no_repeat(n: int):
    """transformers' NoRepeatNGramLogitsProcessor for n > 0 (bans a token that would repeat an n-gram of the
    output so far), else None."""
    from transformers import NoRepeatNGramLogitsProcessor
    return NoRepeatNGramLogitsProcessor(n) if n > 0 else None


@torch.no_grad()
def beam_search(model: GRUSeq2Seq, input_ids, attention_mask, max_new_tokens: int, K: int,
                length_penalty: float = 1.0, guard=None):
    """Batched beam search: K live hypotheses per sentence; a hypothesis that emits </s> is set aside with
    score log p / length**length_penalty; search stops when every sentence holds K finished hypotheses."""
    cfg = model.config
    B, device = input_ids.size(0), input_ids.device
    enc = model.encode(input_ids, attention_mask)
    enc = {k: (v.repeat_interleave(K, 0) if torch.is_tensor(v) else v) for k, v in enc.items()}
    state = enc["state"]
    prev = torch.full((B * K,), cfg.decoder_start_token_id, dtype=torch.long, device=device)
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first
    tokens = torch.zeros(B * K, 0, dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    for t in range(max_new_tokens):
        logp, state, _ = model.logprobs(enc, prev, state)
        if guard and t:
            logp = guard(tokens, logp)
        V = logp.size(-1)
        cand = (scores.view(B * K, 1) + logp).view(B, K * V)
        top, idx = cand.topk(2 * K, dim=-1)                      # [B, 2K]
        beam, tok = idx // V, idx % V
        is_eos = tok == cfg.eos_token_id
        for b, j in (is_eos[:, :K]).nonzero().tolist():          # finished among the K best: keep aside
            if len(finished[b]) < K and top[b, j] > float("-inf"):
                seq = tokens[b * K + beam[b, j]].tolist()
                finished[b].append((top[b, j].item() / (len(seq) + 1) ** length_penalty, seq))
        live = top.masked_fill(is_eos, float("-inf"))
        new_scores, pick = live.topk(K, dim=-1)                  # the K best that did not end
        src = (torch.arange(B, device=device)[:, None] * K + beam.gather(1, pick)).view(-1)
        prev = tok.gather(1, pick).view(-1)
        tokens = torch.cat([tokens[src], prev[:, None]], 1)
        state = state[src]
        scores = new_scores
        if all(len(f) >= K for f in finished):
            break
    out = []
    for b in range(B):
        if len(finished[b]) < K:  # ran out of length: the live beams compete too
            for k in range(K):
                if scores[b, k] > float("-inf"):
                    seq = tokens[b * K + k].tolist()
                    finished[b].append((scores[b, k].item() / max(1, len(seq)) ** length_penalty, seq))
        best = max(finished[b], key=lambda x: x[0])[1] if finished[b] else []
        out.append(best + [cfg.eos_token_id])
    T = max(len(s) for s in out)
    ids = torch.full((B, T), cfg.pad_token_id, dtype=torch.long, device=device)
    for b, s in enumerate(out):
        ids[b, :len(s)] = torch.tensor(s, dtype=torch.long)
    return ids


def register_auto() -> None:
    """Let AutoConfig / AutoModel load saved GRU folders (hfrepro installed; no remote code)."""
    from transformers import AutoConfig, AutoModel
    try:
        AutoConfig.register(GRUSeq2SeqConfig.model_type, GRUSeq2SeqConfig)
        AutoModel.register(GRUSeq2SeqConfig, GRUSeq2Seq)
    except ValueError:  # already registered
        pass


register_auto()
