"""BERT's pre-training model, with the masked-LM head run only where there is something to predict, with
BERT's learned absolute positions or with rotary ones.

`BertForPreTraining` scores every position against the whole vocabulary, then ignores the 85% of positions
that are not masked. Google's original BERT code gathers the masked positions first (`gather_indexes` on
`masked_lm_positions` in `run_pretraining.py`); `SparseBertForPreTraining` does the same: the same weights, the
same loss, the same saved model (a plain `BertForPreTraining` folder: `BertForMaskedLM` and
`pipeline("fill-mask")` load it), and less compute per step, since the vocabulary projection is
the largest matrix product of a small BERT. Without labels (inference) it is `BertForPreTraining`.

Positions. BERT adds a learned vector per absolute position to every token. A masked position holds only
`<mask>`, so the model must learn to attend to its neighbours from those vectors, and a 2-layer BERT learns that
slowly: on the default budget it stays on the most-frequent-token plateau (docs/bert.md measures it; a probe
where the masked token is a copy of its neighbour stays at log V for 600 steps). `SparseRoFormerForPreTraining`
is the same pre-training on RoFormer's blocks (Su et al. 2021): BERT's post-LayerNorm encoder layers with
rotary position embeddings, which rotate queries and keys so that attention scores depend on the *distance*
between tokens, and the same two heads (masked LM; [CLS] -> pooler -> next sentence). It is saved as a
`RoFormerForMaskedLM` folder (`pipeline("fill-mask")` and `AutoModelForMaskedLM` load it; the NSP head's
weights ride along) whose encoder `AutoModelForSequenceClassification` fine-tunes.
"""

from __future__ import annotations

from torch import nn
from torch.nn import functional as F
from transformers import (
    AutoConfig,
    BertConfig,
    BertForPreTraining,
    BertLMHeadModel,
    RoFormerConfig,
    RoFormerForCausalLM,
    RoFormerForMaskedLM,
)
from transformers.modeling_outputs import CausalLMOutput
from transformers.models.bert.modeling_bert import BertForPreTrainingOutput


class _SavedAs:
    """Saved as the plain class a user loads (transformers writes the subclass's name; we correct it)."""

    saved_as: str

    def save_pretrained(self, save_directory, *args, **kwargs):
        out = super().save_pretrained(save_directory, *args, **kwargs)
        self.config.architectures = [self.saved_as]
        self.config.save_pretrained(save_directory)
        return out


def sparse_head_loss(sequence, labels, head):
    """(cross-entropy, scores) with the vocabulary `head` run only at the positions that have a label
    (labels != -100): the largest matrix product of a small model, skipped where nothing is predicted."""
    chosen = labels != -100
    scores = head(sequence[chosen])                          # (labelled positions, vocabulary)
    loss = F.cross_entropy(scores.float(), labels[chosen]) if chosen.any() else sequence.sum() * 0.0
    return loss, scores


def pretraining_output(sequence, relationship, labels, next_sentence_label, mlm_head) -> BertForPreTrainingOutput:
    """BERT's pre-training loss, the vocabulary head run at the masked positions only: masked-LM cross-entropy
    plus (with labels for it) the next-sentence cross-entropy."""
    loss, scores = sparse_head_loss(sequence, labels, mlm_head)
    if next_sentence_label is not None:
        loss = loss + F.cross_entropy(relationship.float(), next_sentence_label.view(-1))
    return BertForPreTrainingOutput(loss=loss, prediction_logits=scores, seq_relationship_logits=relationship)


class SparseBertForPreTraining(_SavedAs, BertForPreTraining):
    saved_as = "BertForPreTraining"

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, next_sentence_label=None, **kwargs):
        if labels is None:
            return super().forward(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                   position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs)
        out = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                        position_ids=position_ids, inputs_embeds=inputs_embeds, return_dict=True)
        sequence, pooled = out[0], out[1]
        return pretraining_output(sequence, self.cls.seq_relationship(pooled), labels, next_sentence_label,
                                  self.cls.predictions)


class SparseRoFormerForPreTraining(_SavedAs, RoFormerForMaskedLM):
    """Masked LM + next-sentence prediction on RoFormer's blocks (BERT's layers, rotary positions), the masked-LM
    head run only at the masked positions, as `SparseBertForPreTraining`; BERT's pooler and NSP classifier."""

    saved_as = "RoFormerForMaskedLM"

    def __init__(self, config):
        super().__init__(config)
        self.pooler = nn.Sequential(nn.Linear(config.hidden_size, config.hidden_size), nn.Tanh())
        self.seq_relationship = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                next_sentence_label=None, **kwargs):
        sequence = self.roformer(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                 return_dict=True).last_hidden_state
        relationship = self.seq_relationship(self.pooler(sequence[:, 0]))
        if labels is None:
            return BertForPreTrainingOutput(prediction_logits=self.cls(sequence), seq_relationship_logits=relationship)
        return pretraining_output(sequence, relationship, labels, next_sentence_label, self.cls)


def next_token_output(sequence, labels, head) -> CausalLMOutput:
    """The next-token loss with the vocabulary head run only where a target is kept (labels != -100): position
    t predicts labels[t + 1]. With every label kept it is the plain causal LM's loss."""
    loss, scores = sparse_head_loss(sequence[:, :-1], labels[:, 1:], head)
    return CausalLMOutput(loss=loss, logits=scores)


class _SparseNextToken(_SavedAs):
    """The left-to-right twin's training forward: the blocks (in attribute `encoder`), then the next-token head at
    the kept targets only; without labels (inference) the plain parent's forward, every position scored."""

    encoder: str

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        if labels is None:
            return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        blocks = getattr(self, self.encoder)
        sequence = blocks(input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state
        return next_token_output(sequence, labels, self.cls)


class SparseBertLMHeadModel(_SparseNextToken, BertLMHeadModel):
    """The left-to-right twin with absolute positions (see below)."""

    saved_as, encoder = "BertLMHeadModel", "bert"


class SparseRoFormerForCausalLM(_SparseNextToken, RoFormerForCausalLM):
    """The left-to-right twin: BERT's blocks (rotary positions) with a causal mask and a next-token head, run at
    the kept targets only. The twin's collator keeps a random share of the targets per batch, as BERT's masks
    15% of the tokens: both then learn from as many predicted tokens per step, at about the same cost per step."""

    saved_as, encoder = "RoFormerForCausalLM", "roformer"


POSITIONS = ("absolute", "rotary")  # BERT's learned position vectors, or RoFormer's rotary ones


def bert_config(tokenizer, width: int, layers: int, heads: int, max_length: int, dropout: float,
                causal: bool = False, positions: str = "absolute"):
    """A small BERT for this tokenizer: feed-forward 4x the width, 2 token types (segments A and B), tied input
    and output embeddings; `causal` makes it the left-to-right twin (the same blocks with a causal mask);
    `positions="rotary"` gives RoFormer's config (the same layers, rotary instead of learned positions)."""
    common = dict(
        vocab_size=len(tokenizer), hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=4 * width, max_position_embeddings=max_length, type_vocab_size=2,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
        is_decoder=causal)
    if positions == "rotary":
        return RoFormerConfig(embedding_size=width, **common)
    return BertConfig(**common)


# By the blocks' model type (what `--positions` chose): BERT's two pre-training heads, and the left-to-right twin.
PRETRAINING = {"bert": SparseBertForPreTraining, "roformer": SparseRoFormerForPreTraining}
LEFT_TO_RIGHT = {"bert": SparseBertLMHeadModel, "roformer": SparseRoFormerForCausalLM}


def pretraining_model(config):
    """BERT's two pre-training heads on the config's blocks (absolute or rotary positions)."""
    return PRETRAINING[config.model_type](config)


def left_to_right_model(config):
    """The left-to-right twin: the same blocks with a causal mask and a next-token head (sparse in training)."""
    return LEFT_TO_RIGHT[config.model_type](config)


def load_pretraining(folder):
    """A saved pre-training folder with both heads (NSP included), absolute or rotary; without labels the
    sparse classes are their plain parents (every position scored)."""
    return PRETRAINING[AutoConfig.from_pretrained(folder).model_type].from_pretrained(folder)

