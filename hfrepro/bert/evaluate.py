"""What a pre-trained BERT is scored on: held-out text, masked with a fixed seed, item by item.

Held-out windows are `[CLS] + w + [SEP]`, `w` a run of `max_length - 2` tokens of the test text. With a seed,
`mask_probability` of the tokens of `w` are chosen and all replaced by the mask token (no 80/10/10 at
evaluation). Every chosen position is one *item*: the token that was there, BERT's top prediction, and the log
probability it gives the true token.

"Both sides": the left-to-right twin reads `[CLS] + w` without masks and predicts each token from the tokens
before it; at a chosen position `p` its prediction is the one made at `p - 1`. So both models answer for the
same tokens, one seeing both sides (with the other masks in place), the other the left side only. Positions
within `margin` tokens of either end are left out of that comparison: there the left side is short, or BERT
has little right side.

Next-sentence prediction is scored on held-out sentence pairs built like the training pairs (half IsNext).
"""

from __future__ import annotations

import random

import torch

from hfrepro.bert.data import pair_dataset, special_ids, windows


def masked_windows(tokenizer, flat: list[int], max_length: int, n_windows: int | None, seed: int,
                   mask_probability: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, chosen): `n_windows` held-out windows drawn with the seed (all when None), and the chosen positions."""
    cls_id, sep_id = special_ids(tokenizer)
    ws = windows(flat, max_length - 2)
    if n_windows is not None and n_windows < len(ws):
        ws = [ws[i] for i in sorted(random.Random(seed).sample(range(len(ws)), n_windows))]
    x = torch.tensor([[cls_id, *w, sep_id] for w in ws])
    g = torch.Generator().manual_seed(seed)
    chosen = torch.rand(x.shape, generator=g) < mask_probability
    chosen[:, 0] = chosen[:, -1] = False
    empty = ~chosen.any(1)                       # every window answers at least once
    chosen[empty, 1 + torch.randint(0, x.shape[1] - 2, (int(empty.sum()),), generator=g)] = True
    return x, chosen


@torch.inference_mode()
def _predictions(model, x: torch.Tensor, chosen: torch.Tensor, logits_at, batch_size: int):
    """(top prediction, log P(true token)) at every chosen position (row-major order), in batches, in eval mode;
    `logits_at(xb, cb)` gives the logits at a batch's chosen positions."""
    was = model.training
    model.eval()
    preds, logps = [], []
    for i in range(0, len(x), batch_size):
        xb, cb = x[i:i + batch_size], chosen[i:i + batch_size]
        logits = logits_at(xb, cb).float()
        preds.append(logits.argmax(-1))
        logps.append(logits.log_softmax(-1).gather(-1, xb[cb][:, None])[:, 0])
    model.train(was)
    return torch.cat(preds), torch.cat(logps)


def masked_predictions(model, x: torch.Tensor, chosen: torch.Tensor, mask_id: int,
                       batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's (top prediction, log P(true token)) at every chosen position (row-major order), all masked."""
    return _predictions(model, x, chosen, lambda xb, cb: _logits(model, xb.masked_fill(cb, mask_id))[cb],
                        batch_size)


def left_to_right_predictions(model, x: torch.Tensor, chosen: torch.Tensor,
                              batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The left-to-right model's (top prediction, log P(true token)) at the same positions, from the left side."""
    def logits_at(xb, cb):
        logits = _logits(model, xb[:, :-1])                    # position p - 1 predicts token p
        shifted = torch.zeros_like(cb)
        shifted[:, :-1] = cb[:, 1:]
        return logits[shifted[:, :-1]]

    return _predictions(model, x, chosen, logits_at, batch_size)


def _logits(model, input_ids: torch.Tensor) -> torch.Tensor:
    device = next(model.parameters()).device
    out = model(input_ids=input_ids.to(device), attention_mask=torch.ones_like(input_ids).to(device))
    logits = out.prediction_logits if hasattr(out, "prediction_logits") else out.logits
    return logits.cpu()


def position_items(x: torch.Tensor, chosen: torch.Tensor, margin: int) -> dict[str, torch.Tensor]:
    """For every chosen position (row-major): its window, its position, its token, and whether it is a *middle*
    position (at least `margin` tokens of text on each side inside the window)."""
    rows, cols = chosen.nonzero(as_tuple=True)
    width = x.shape[1] - 2                     # text positions are 1 .. width
    middle = (cols - 1 >= margin) & (width - cols >= margin)
    return {"window": rows, "position": cols, "target": x[chosen], "middle": middle}


@torch.inference_mode()
def nsp_predictions(model, tokenizer, tok_docs, max_length: int, n_pairs: int | None, seed: int,
                    batch_size: int = 64) -> tuple[list[int], list[int]]:
    """(labels, predictions) of next-sentence prediction on held-out pairs (0 = IsNext, 1 = NotNext); a seeded
    sample of `n_pairs` of them, or all (None or 0)."""
    ds = pair_dataset(tokenizer, tok_docs, max_length, seed=seed)
    if n_pairs and n_pairs < len(ds):
        ds = ds.select(sorted(random.Random(seed).sample(range(len(ds)), n_pairs)))
    pad = tokenizer.pad_token_id
    was = model.training
    model.eval()
    labels, preds = list(ds["next_sentence_label"]), []
    device = next(model.parameters()).device
    for i in range(0, len(ds), batch_size):
        b = ds[i:i + batch_size]
        n = max(map(len, b["input_ids"]))
        ids = torch.tensor([r + [pad] * (n - len(r)) for r in b["input_ids"]])
        tt = torch.tensor([r + [0] * (n - len(r)) for r in b["token_type_ids"]])
        mask = (ids != pad).long()
        out = model(input_ids=ids.to(device), token_type_ids=tt.to(device), attention_mask=mask.to(device))
        preds += out.seq_relationship_logits.argmax(-1).cpu().tolist()
    model.train(was)
    return labels, preds
