"""The BERT chapter's claims, decided by the protocol (hfrepro.claims, docs/CLAIMS.md) from item-level results.

Each function takes what the held-out items gave (0/1 per item, or counts per window) and returns a `Decision`;
thresholds are fixed here, before any run. The tests feed them synthetic results on both sides of each
threshold and inside the inconclusive band.
"""

from __future__ import annotations

import math
from typing import Sequence

from hfrepro.claims import LEVEL, N_BOOT, Decision, bootstrap, decide, paired_bootstrap

MLM_RATIO = 2.0        # masked-token accuracy at least twice the most-frequent-token baseline
BOTH_SIDES_GAIN = 0.0  # BERT minus the left-to-right twin, same positions: above zero
NSP_CHANCE = 0.5       # next-sentence accuracy above chance (the pairs are half IsNext by construction)
FINETUNE_GAIN = 0.0    # pre-trained minus randomly initialised encoder, same items: above zero


def ratio_bootstrap(num: Sequence[float], den: Sequence[float], *, seed: int = 0, n_boot: int = N_BOOT,
                    level: float = LEVEL) -> tuple[float, float, float]:
    """(estimate, lo, hi) of sum(num) / sum(den) with a percentile bootstrap over items (e.g. windows: the masked
    tokens of one window share their context, so the window is the unit that is resampled)."""
    import numpy as np

    x, y = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"numerator and denominator differ in size: {x.shape} vs {y.shape}")
    if x.size == 0 or y.sum() == 0:
        return math.nan, math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    sx, sy = x[idx].sum(axis=1), y[idx].sum(axis=1)
    ratios = np.where(sy > 0, sx / np.where(sy > 0, sy, 1), np.inf)
    lo, hi = np.quantile(ratios, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(x.sum() / y.sum()), float(lo), float(hi)


def mlm_claim(correct: Sequence[int], majority: Sequence[int], seed: int = 0) -> Decision:
    """Per held-out window: masked tokens BERT got right, and those the most frequent token would get right."""
    est, lo, hi = ratio_bootstrap(correct, majority, seed=seed)
    return decide("bert-mlm-baseline", "masked-token accuracy / most-frequent-token accuracy", est, lo, hi,
                  MLM_RATIO, uncertainty=f"bootstrap over {len(correct):,} held-out windows",
                  evidence=f"{sum(correct):,} vs {sum(majority):,} masked tokens right")


def both_sides_claim(bert: Sequence[int], left_to_right: Sequence[int], seed: int = 0) -> Decision:
    """Per middle position: BERT right (0/1), the left-to-right twin right (0/1)."""
    est, lo, hi = paired_bootstrap(left_to_right, bert, seed=seed)
    n = len(bert)
    return decide("bert-both-sides", "BERT − left-to-right accuracy at the same masked middle positions", est, lo,
                  hi, BOTH_SIDES_GAIN, uncertainty=f"paired bootstrap over {n:,} positions",
                  evidence=f"BERT {_share(bert)}, left-to-right {_share(left_to_right)}")


def nsp_claim(correct: Sequence[int], seed: int = 0) -> Decision:
    est, lo, hi = bootstrap(correct, seed=seed)
    return decide("bert-nsp", "next-sentence accuracy on held-out pairs", est, lo, hi, NSP_CHANCE,
                  uncertainty=f"bootstrap over {len(correct):,} pairs, half of them IsNext",
                  evidence=f"{sum(correct):,} of {len(correct):,} right; chance 0.5")


def finetune_claim(pretrained: Sequence[int], random_init: Sequence[int], seed: int = 0) -> Decision:
    """Per held-out item: right (0/1) with the pre-trained encoder, and with the randomly initialised one."""
    est, lo, hi = paired_bootstrap(random_init, pretrained, seed=seed)
    return decide("bert-finetune", "pre-trained − random-init accuracy on the same held-out items", est, lo, hi,
                  FINETUNE_GAIN, uncertainty=f"paired bootstrap over {len(pretrained):,} items",
                  evidence=f"pre-trained {_share(pretrained)}, random init {_share(random_init)}")


def _share(xs: Sequence[int]) -> str:
    return f"{sum(xs) / len(xs):.3f}" if len(xs) else "n/a"
