"""The perplexity ladder, decided by the claims protocol: every rung scored on the same held-out documents.

Each model gives the bits it pays for every held-out document (the same documents, the same characters), so
the steps of the ladder are paired comparisons. A step's gap is

    bits/char of the rung below - bits/char of the rung above        (> 0: the step goes down, as claimed)

and the ladder holds when its smallest gap is above 0. The interval comes from one bootstrap over documents
that resamples all rungs together (the same documents for every model, every step): the statistic is the
smallest gap of each resample, so a ladder is REPRODUCED only when every step is clearly down at once, and NOT
REPRODUCED when some step is clearly up.

    steps, (est, lo, hi) = ladder_bootstrap([("unigram", bits_u), ("bigram", bits_b), ...], chars)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hfrepro.claims import LEVEL, N_BOOT


def ladder_bootstrap(rungs: Sequence[tuple[str, Sequence[float]]], chars: Sequence[int], *, seed: int = 0,
                     n_boot: int = N_BOOT, level: float = LEVEL) -> tuple[list[dict], tuple[float, float, float]]:
    """Per-step gaps in bits/char with their own intervals, and (estimate, lo, hi) of the smallest gap.

    `rungs`: (name, bits per document) from the bottom of the ladder up; `chars`: characters per document."""
    c = np.asarray(chars, dtype=float)
    if len(rungs) < 2:
        raise ValueError("a ladder needs at least two rungs")
    if c.size == 0 or any(len(b) != c.size for _, b in rungs):
        raise ValueError(f"every rung needs one number per document ({c.size} documents)")
    bits = np.array([np.asarray(b, dtype=float) for _, b in rungs])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, c.size, size=(n_boot, c.size))
    bpc = bits[:, idx].sum(axis=2) / c[idx].sum(axis=1)          # (rungs, resamples)
    gaps = bpc[:-1] - bpc[1:]                                      # (steps, resamples)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    point = bits.sum(axis=1) / c.sum()
    steps = []
    for k in range(len(rungs) - 1):
        lo, hi = np.quantile(gaps[k], q)
        steps.append({"from": rungs[k][0], "to": rungs[k + 1][0], "bpc_from": float(point[k]),
                      "bpc_to": float(point[k + 1]), "gap": float(point[k] - point[k + 1]),
                      "lo": float(lo), "hi": float(hi)})
    lo, hi = np.quantile(gaps.min(axis=0), q)
    return steps, (float(min(s["gap"] for s in steps)), float(lo), float(hi))
