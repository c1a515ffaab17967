"""BERT's pre-training model, with the masked-LM head run only where there is something to predict.

`BertForPreTraining` scores every position against the whole vocabulary, then ignores the 85% of positions
that are not masked. Google's original BERT code gathers the masked positions first (`gather_indexes` on
`masked_lm_positions` in `run_pretraining.py`); `SparseBertForPreTraining` does the same: the same weights, the
same loss, the same saved model (a plain `BertForPreTraining` folder: `BertForMaskedLM` and
`pipeline("fill-mask")` load it), and less compute per step, since the vocabulary projection is
the largest matrix product of a small BERT. Without labels (inference) it is `BertForPreTraining`.
"""

from __future__ import annotations

from torch.nn import functional as F
from transformers import BertConfig, BertForPreTraining
from transformers.models.bert.modeling_bert import BertForPreTrainingOutput


class SparseBertForPreTraining(BertForPreTraining):
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, next_sentence_label=None, **kwargs):
        if labels is None:
            return super().forward(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                   position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs)
        out = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                        position_ids=position_ids, inputs_embeds=inputs_embeds, return_dict=True)
        sequence, pooled = out[0], out[1]
        chosen = labels != -100
        scores = self.cls.predictions(sequence[chosen])          # (masked tokens, vocabulary)
        loss = F.cross_entropy(scores.float(), labels[chosen]) if chosen.any() else sequence.sum() * 0.0
        relationship = self.cls.seq_relationship(pooled)
        if next_sentence_label is not None:
            loss = loss + F.cross_entropy(relationship.float(), next_sentence_label.view(-1))
        return BertForPreTrainingOutput(loss=loss, prediction_logits=scores, seq_relationship_logits=relationship)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Saved as what it is on disk: a BertForPreTraining (transformers writes the class name; we correct it)."""
        out = super().save_pretrained(save_directory, *args, **kwargs)
        self.config.architectures = ["BertForPreTraining"]
        self.config.save_pretrained(save_directory)
        return out


def bert_config(tokenizer, width: int, layers: int, heads: int, max_length: int, dropout: float,
                causal: bool = False) -> BertConfig:
    """A small BERT for this tokenizer: feed-forward 4x the width, 2 token types (segments A and B), tied input
    and output embeddings; `causal` makes it the left-to-right twin (the same blocks with a causal mask)."""
    return BertConfig(
        vocab_size=len(tokenizer), hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=4 * width, max_position_embeddings=max_length, type_vocab_size=2,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
        is_decoder=causal)

