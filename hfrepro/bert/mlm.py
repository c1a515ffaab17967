"""Masked-LM pieces the ecosystem lacks: a byte-level BPE <mask> that absorbs the space before it, the
most-frequent-token baseline, masked-token accuracy on held-out text (hfrepro.bert.evaluate's items), and the
left-to-right twin's collator that keeps a share of the next-token targets.

Masked-token accuracy: held-out windows, a seeded 15% of their tokens replaced by the mask token, the model's
top prediction compared with the original token. The same positions give the baseline of always answering the
most frequent training token: a model that has learnt only the unigram distribution scores exactly that.
"""

from __future__ import annotations

import collections
import math

from transformers import DataCollatorForLanguageModeling

from hfrepro.bert.evaluate import masked_predictions, masked_windows


class NextTokenSample(DataCollatorForLanguageModeling):
    """Next-token labels (padding excluded) with each kept with probability `share`, the rest -100: at
    share = 0.15 the left-to-right twin learns from as many tokens per batch as BERT's 15% masked LM. Drawn from
    torch's generator, which the Trainer seeds, afresh for every batch."""

    def __init__(self, tokenizer, share: float = 1.0):
        super().__init__(tokenizer, mlm=False)
        self.share = share

    def torch_call(self, examples):
        import torch

        batch = super().torch_call(examples)
        if self.share < 1:
            batch["labels"][torch.rand(batch["labels"].shape) >= self.share] = -100
        return batch


def mask_absorbs_space(tok):
    """Make a byte-level BPE's <mask> take the space before it (RoBERTa's lstrip), so 'the <mask> of'
    asks for the token ' word' the model learned, not for a bare space."""
    from tokenizers import AddedToken

    if tok.mask_token is None or not tok.is_fast or "ByteLevel" not in str(tok.backend_tokenizer.pre_tokenizer):
        return tok  # only byte-level BPE keeps spaces inside tokens; WordPiece splits on them already
    t = AddedToken(str(tok.mask_token), lstrip=True, special=True, normalized=False)
    tok._tokenizer.add_special_tokens([t])
    tok.mask_token = t
    return tok


def most_frequent_token(flat: list[int], tok) -> int:
    """The most frequent non-special token of a token stream."""
    special = set(tok.all_special_ids)
    counts = collections.Counter(t for t in flat if t not in special)
    return counts.most_common(1)[0][0]


def masked_accuracy(model, tok, flat: list[int], max_length: int, seed: int = 0, mask_probability: float = 0.15,
                    n_windows: int | None = None, majority_id: int | None = None) -> dict:
    """Top-1 accuracy at the masked positions of held-out windows, the mean cross-entropy there (as a
    perplexity), and the most-frequent-token baseline on the same positions."""
    x, chosen = masked_windows(tok, flat, max_length, n_windows, seed, mask_probability)
    pred, logp = masked_predictions(model, x, chosen, tok.mask_token_id)
    target = x[chosen]
    total = int(chosen.sum())
    out = {"masked_windows": len(x), "masked_tokens": total,
           "masked_accuracy": float((pred == target).float().mean()),
           "masked_perplexity": math.exp(-float(logp.mean()))}
    if majority_id is not None:
        out["majority_baseline_accuracy"] = float((target == majority_id).float().mean())
        out["majority_token"] = tok.convert_ids_to_tokens(majority_id)
    return out
