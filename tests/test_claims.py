"""The claims protocol: verdicts from an interval and a threshold, and the statistics behind the intervals,
checked against hand-computed values."""

import math

import pytest

from hfrepro.claims import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    bootstrap,
    decide,
    mean,
    paired_bootstrap,
    sign_test,
    standard_error,
    t_interval,
    verdict_of,
)


@pytest.mark.parametrize("lo,hi,t,higher,want", [
    (0.1, 0.3, 0.0, True, REPRODUCED),          # clears the threshold on the claimed side
    (-0.3, -0.1, 0.0, True, NOT_REPRODUCED),    # clears it on the other side
    (-0.1, 0.3, 0.0, True, INCONCLUSIVE),       # straddles it
    (0.0, 0.3, 0.0, True, INCONCLUSIVE),        # touching is not clearing
    (1.2, 1.9, 2.0, False, REPRODUCED),         # "below a bound"
    (1.5, 2.5, 2.0, False, INCONCLUSIVE),
    (2.1, 2.5, 2.0, False, NOT_REPRODUCED),
    (math.nan, 1.0, 0.0, True, INCONCLUSIVE),   # an interval that could not be computed decides nothing
])
def test_verdict_of(lo, hi, t, higher, want):
    assert verdict_of(lo, hi, t, higher) == want


def test_decision_summary_names_statistic_interval_and_threshold():
    d = decide("c", "LoRA gain / full gain", 0.95, 0.91, 0.99, 0.9, uncertainty="3 seeds", evidence="0.75 vs 0.80")
    assert d.verdict == REPRODUCED
    assert d.summary() == "LoRA gain / full gain = 0.95 [0.91, 0.99] vs > 0.9 (3 seeds); 0.75 vs 0.80"


def test_mean_and_standard_error_by_hand():
    assert mean([1, 2, 3, 4]) == 2.5
    # sample sd of 1..4 = sqrt(5/3); se = sd / 2
    assert standard_error([1, 2, 3, 4]) == pytest.approx(math.sqrt(5 / 3) / 2)
    assert math.isnan(standard_error([1.0]))  # one value: unknown, never 0


def test_t_interval_by_hand():
    m, lo, hi = t_interval([1.0, 2.0, 3.0])
    # mean 2, se = 1/sqrt(3), t(0.975, 2) = 4.302653
    assert m == 2.0 and hi - m == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5) and m - lo == pytest.approx(hi - m)
    assert math.isnan(t_interval([1.0])[1])


def test_bootstrap_is_seeded_and_covers_the_mean():
    xs = [0, 1] * 50
    a, b = bootstrap(xs, seed=1), bootstrap(xs, seed=1)
    assert a == b and a[0] == 0.5 and a[1] < 0.5 < a[2]
    # a constant sample has a zero-width interval
    assert bootstrap([3.0] * 10) == (3.0, 3.0, 3.0)


def test_paired_bootstrap_difference():
    a = [0] * 60 + [1] * 40
    b = [1] * 100  # b right on every item where a was wrong, never worse
    est, lo, hi = paired_bootstrap(a, b)
    assert est == pytest.approx(0.6) and 0.45 < lo < est < hi <= 0.75
    est, lo, hi = paired_bootstrap(a, a)
    assert (est, lo, hi) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        paired_bootstrap([1, 2], [1])


def test_sign_test_by_hand():
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 0) == pytest.approx(2 / 32)          # 2 * (1/2)^5
    assert sign_test(3, 1) == pytest.approx(2 * 5 / 16)      # 2 * (C(4,0)+C(4,1)) / 2^4
    assert sign_test(1, 3) == sign_test(3, 1)
