"""Masked-LM pieces the ecosystem lacks: a byte-level BPE <mask> that absorbs the space before it, and
masked-token accuracy on held-out text with the most-frequent-token baseline (recipes/mlm.py uses both).

Masked-token accuracy is measured on the held-out documents with a fixed seed: 15% of the tokens are
replaced by the mask token and the model's top prediction is compared with the original token. The same
positions give the baseline of always answering the most frequent training token.
"""

from __future__ import annotations

import collections
import math

from hfrepro.lm.data import start_id


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


def most_frequent_token(train_ds, tok) -> int:
    special = set(tok.all_special_ids)
    counts = collections.Counter(t for ids in train_ds["input_ids"] for t in ids if t not in special)
    return counts.most_common(1)[0][0]


def masked_accuracy(model, tok, docs: list[str], max_length: int, seed: int = 0, mlm_probability: float = 0.15,
                    batch_size: int = 16, majority_id: int | None = None) -> dict:
    """Top-1 accuracy at masked positions of held-out documents (fixed seed; every chosen token becomes
    the mask token), the mean cross-entropy there, and the most-frequent-token baseline."""
    import torch
    from transformers import DataCollatorForLanguageModeling

    s = start_id(tok)
    pieces = []
    for ids in tok(docs, add_special_tokens=False, verbose=False)["input_ids"]:
        ids = [s] + ids
        pieces += [ids[i:i + max_length] for i in range(0, len(ids), max_length)]
    collator = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=mlm_probability,
                                               mask_replace_prob=1.0, random_replace_prob=0.0, seed=seed,
                                               return_tensors="pt")
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    right = total = base = 0
    nll = 0.0
    with torch.inference_mode():
        for i in range(0, len(pieces), batch_size):
            batch = collator([{"input_ids": p} for p in pieces[i:i + batch_size]])
            labels = batch.pop("labels")
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
            m = labels != -100
            right += int((logits.argmax(-1)[m] == labels[m]).sum())
            total += int(m.sum())
            nll += float(torch.nn.functional.cross_entropy(logits[m], labels[m], reduction="sum"))
            if majority_id is not None:
                base += int((labels[m] == majority_id).sum())
    model.train(was)
    out = {"masked_tokens": total, "masked_accuracy": right / max(1, total),
           "masked_perplexity": math.exp(nll / max(1, total))}
    if majority_id is not None:
        out["majority_baseline_accuracy"] = base / max(1, total)
        out["majority_token"] = tok.convert_ids_to_tokens(majority_id)
    return out
