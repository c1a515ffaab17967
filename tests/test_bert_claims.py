"""The BERT chapter's decision rules on synthetic results: each claim on both sides of its threshold and inside the
inconclusive band; the ratio bootstrap against hand-computed values."""

import math

import pytest

from hfrepro.bert import claims as rules
from hfrepro.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED


def _windows(n, right, base):
    """n windows of 10 masked tokens each: `right` of them right, `base` the most frequent token."""
    return [right] * n, [base] * n


def test_ratio_bootstrap_by_hand():
    est, lo, hi = rules.ratio_bootstrap([1, 2, 3], [1, 1, 1], seed=0)
    assert est == 2.0 and 1.0 <= lo <= est <= hi <= 3.0
    assert rules.ratio_bootstrap([2, 2], [1, 1]) == (2.0, 2.0, 2.0)          # no spread, no width
    assert all(math.isnan(v) for v in rules.ratio_bootstrap([1, 1], [0, 0]))  # no baseline hits: undefined
    with pytest.raises(ValueError):
        rules.ratio_bootstrap([1], [1, 2])


@pytest.mark.parametrize("right,base,want", [
    (3, 1, REPRODUCED),        # 3x the baseline, tight
    (1, 1, NOT_REPRODUCED),    # at the baseline: the unigram plateau
])
def test_mlm_claim_sides(right, base, want):
    d = rules.mlm_claim(*_windows(400, right, base))
    assert d.verdict == want and d.threshold == 2.0


def test_mlm_claim_inconclusive_band():
    # windows alternate between 3x and 1x the baseline: ratio 2 with spread around it
    correct = [3, 1] * 20
    majority = [1, 1] * 20
    d = rules.mlm_claim(correct, majority)
    assert d.estimate == pytest.approx(2.0) and d.lo < 2.0 < d.hi and d.verdict == INCONCLUSIVE


def test_both_sides_claim():
    n = 600
    assert rules.both_sides_claim([1] * (n // 2) + [0] * (n // 2), [0] * n).verdict == REPRODUCED
    assert rules.both_sides_claim([0] * n, [1] * (n // 2) + [0] * (n // 2)).verdict == NOT_REPRODUCED
    # equal accuracy, different items: the paired interval straddles 0
    a = [1, 0] * (n // 2)
    b = [0, 1] * (n // 2)
    d = rules.both_sides_claim(a, b)
    assert d.estimate == 0 and d.lo < 0 < d.hi and d.verdict == INCONCLUSIVE


def test_nsp_claim():
    assert rules.nsp_claim([1] * 70 + [0] * 30).verdict == REPRODUCED
    assert rules.nsp_claim([1] * 30 + [0] * 70).verdict == NOT_REPRODUCED
    d = rules.nsp_claim([1, 0] * 50)
    assert d.estimate == 0.5 and d.verdict == INCONCLUSIVE and "chance 0.5" in d.summary()


def test_finetune_claim():
    pre, rnd = [1] * 60 + [0] * 40, [1] * 40 + [0] * 60
    assert rules.finetune_claim(pre, rnd).verdict == REPRODUCED
    assert rules.finetune_claim(rnd, pre).verdict == NOT_REPRODUCED
    assert rules.finetune_claim([1, 0] * 50, [0, 1] * 50).verdict == INCONCLUSIVE
    d = rules.finetune_claim(pre, rnd)
    assert d.estimate == pytest.approx(0.2) and "pre-trained 0.600, random init 0.400" in d.summary()
