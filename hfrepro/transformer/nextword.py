"""Predicting the next word with the future masked: the source material's "오늘 나는 치킨을 먹었다".

GPT reads "오늘 나는" and predicts what comes next; the rest of the sentence exists during training, but the
causal mask hides it: position i attends only to positions <= i. Two measurements make that visible:

    future_effect(causal_lm, tok, sentence, prefix)   how much the prediction after `prefix` changes when the
                                                       rest of the sentence is there or not: 0 (up to rounding)
    future_effect(encoder, tok, sentence, prefix)      the same for BERT's vectors at the prefix: large, because
                                                       a bidirectional encoder looks both ways

and `rank_next_words` asks the causal LM which word it expects after the prefix among a few candidates
(the log-probability of each candidate's whole token sequence).
"""

from __future__ import annotations

import math
from typing import Sequence

from hfrepro.report import pyplot, save_figure

SENTENCE = "오늘 나는 치킨을 먹었다"
PREFIX = "오늘 나는"
CANDIDATES = (" 치킨을", " 밥을", " 학교에", " 책을", " 친구를", " 어제")


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def prefix_length(tokenizer, ids: list[int], prefix: str) -> int:
    """How many of the sentence's tokens spell `prefix` (a byte-level BPE may cut a word differently at the
    end of a text, so the sentence's own tokens are cut, not the prefix's)."""
    for k in range(len(ids), 0, -1):
        if tokenizer.decode(ids[:k]).strip() == prefix.strip():
            return k
    raise ValueError(f"{prefix!r} is not a token prefix of the sentence")


def causal_future_effect(model, tokenizer, sentence: str = SENTENCE, prefix: str = PREFIX,
                         start_id: int | None = None) -> dict:
    """Max |logit difference| at the prefix's positions between reading the prefix alone and reading the whole
    sentence; the prefix must be a token prefix of the sentence."""
    import torch

    full = _ids(tokenizer, sentence)
    pre = full[:prefix_length(tokenizer, full, prefix)]
    head = [start_id] if start_id is not None else []
    with torch.inference_mode():
        a = model(input_ids=torch.tensor([head + full])).logits[0, :len(head) + len(pre)].double()
        b = model(input_ids=torch.tensor([head + pre])).logits[0].double()
    return {"max_abs_diff": float((a - b).abs().max()), "scale": float(a.abs().max()),
            "prefix_tokens": len(pre), "sentence_tokens": len(full)}


def encoder_future_effect(model, tokenizer, sentence: str = SENTENCE, prefix: str = PREFIX) -> dict:
    """The same for an encoder: max |difference| of the last layer's vectors at the prefix's tokens ([CLS]
    included) between encoding the prefix alone and the whole sentence."""
    import torch

    full = tokenizer(sentence)["input_ids"]
    pre = full[:1 + prefix_length(tokenizer, full[1:], prefix)]     # [CLS] + the prefix's tokens
    with torch.inference_mode():
        a = model(input_ids=torch.tensor([full])).last_hidden_state[0, :len(pre)].double()
        b = model(input_ids=torch.tensor([pre + [tokenizer.sep_token_id]])).last_hidden_state[0, :len(pre)].double()
    return {"max_abs_diff": float((a - b).abs().max()), "scale": float(a.abs().max()), "prefix_tokens": len(pre)}


def rank_next_words(model, tokenizer, prefix: str = PREFIX, candidates: Sequence[str] = CANDIDATES,
                    start_id: int | None = None) -> list[dict]:
    """log P(candidate | prefix) of each candidate (all of its tokens), best first."""
    import torch

    pre = _ids(tokenizer, prefix)
    head = ([start_id] if start_id is not None else []) + pre
    rows = []
    with torch.inference_mode():
        for c in candidates:
            full = _ids(tokenizer, prefix + c)
            cont = full[len(pre):] if full[:len(pre)] == pre else _ids(tokenizer, c)
            x = torch.tensor([head + cont])
            logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].double(), -1)
            lp = float(logp[torch.arange(len(head) - 1, x.shape[1] - 1), x[0, len(head):]].sum())
            rows.append({"candidate": c.strip(), "tokens": len(cont), "log2 P": lp / math.log(2), "P": math.exp(lp)})
    return sorted(rows, key=lambda r: -r["log2 P"])


def plot_mask(tokens: list[str], path) -> None:
    """The causal mask over a sentence's tokens: row i may look at the columns <= i."""
    import numpy as np

    plt = pyplot()
    n = len(tokens)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(np.tril(np.ones((n, n))), cmap="Greens", vmin=0, vmax=1.3)
    labels = [f"#{i}" for i in range(n)]
    ax.set_xticks(range(n), labels, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set(xlabel="key position (what is looked at)", ylabel="query position (who predicts the next token)",
           title="Causal mask: green = visible, white = future (masked)")
    save_figure(fig, path)
