"""The LM stage's claims decided on synthetic results: each on both sides of its threshold and inside the
inconclusive band; the ladder bootstrap against hand-computed numbers."""

import numpy as np
import pytest

from hfrepro.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, verdict
from hfrepro.lm.ladder import ladder_bootstrap
from hfrepro.lm.sampling import distinct_n, per_prompt
from hfrepro.reproduce.lm import _ladder_claim, temperature_claims


def _rungs(bpcs, chars, noise, seed=0):
    """Per-document bits for rungs with the given bits/char, plus document-level noise (bits per char)."""
    rng = np.random.default_rng(seed)
    c = np.asarray(chars, dtype=float)
    shared = rng.normal(0, 0.4, c.size)                       # hard and easy documents, the same for every model
    return [(f"m{k}", (b + shared + rng.normal(0, noise, c.size)) * c) for k, b in enumerate(bpcs)]


def test_ladder_bootstrap_by_hand():
    chars = [10, 30]
    rungs = [("a", [30.0, 60.0]), ("b", [20.0, 60.0]), ("c", [20.0, 40.0])]   # bpc 90/40, 80/40, 60/40
    steps, (est, lo, hi) = ladder_bootstrap(rungs, chars, n_boot=4000)
    assert [s["gap"] for s in steps] == pytest.approx([10 / 40, 20 / 40])
    assert steps[0]["bpc_from"] == pytest.approx(90 / 40) and steps[1]["bpc_to"] == pytest.approx(60 / 40)
    assert est == pytest.approx(0.25)
    # a resample holds document 0 twice (p = 1/4: gaps a->b 20/20, b->c 0), document 1 twice (1/4: 0 and
    # 40/60) or one of each (1/2: 10/40 and 20/40); the smallest gap is 0, 0 or 0.25
    assert (lo, hi) == pytest.approx((0.0, 0.25))
    assert (steps[0]["lo"], steps[0]["hi"]) == pytest.approx((0.0, 1.0))
    assert (steps[1]["lo"], steps[1]["hi"]) == pytest.approx((0.0, 2 / 3))


def test_ladder_bootstrap_is_seeded_and_checks_its_input():
    r = _rungs([2.5, 2.2], [100] * 50, 0.05)
    assert ladder_bootstrap(r, [100] * 50, seed=3) == ladder_bootstrap(r, [100] * 50, seed=3)
    with pytest.raises(ValueError, match="one number per document"):
        ladder_bootstrap([("a", [1, 2]), ("b", [1])], [1, 1])
    with pytest.raises(ValueError, match="two rungs"):
        ladder_bootstrap([("a", [1, 2])], [1, 1])


@pytest.mark.parametrize("bpcs,noise,expected", [
    ([2.5, 2.2, 2.0, 1.9, 1.8, 1.6], 0.05, REPRODUCED),        # every step clearly down
    ([2.5, 2.2, 2.0, 2.3, 1.9, 1.6], 0.05, NOT_REPRODUCED),    # the LSTM clearly above Kneser-Ney
    ([2.5, 2.2, 2.0, 1.999, 1.9, 1.6], 0.05, INCONCLUSIVE),    # one step too small to tell
])
def test_ladder_claim_on_both_sides_and_in_between(bpcs, noise, expected):
    chars = np.random.default_rng(1).integers(20, 400, 250)
    rungs = _rungs(bpcs, chars, noise)
    d = _ladder_claim(*ladder_bootstrap(rungs, chars, seed=0), len(chars))
    assert d.verdict == expected
    assert d.threshold == 0 and d.higher
    assert "250 held-out speeches" in d.uncertainty


def _study_rows(d2_lo, d2_hi, bits_lo, bits_hi, n=20, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        for T, d2, b in ((0.0, d2_lo, bits_lo), (1.5, d2_hi, bits_hi)):
            for j in range(1 if T == 0 else 2):
                rows.append({"temperature": T, "prompt_index": k, "prompt": "The king", "sample": j,
                             "distinct_2": d2 + rng.normal(0, noise), "judge_bits_per_char": b + rng.normal(0, noise)})
    return rows


@pytest.mark.parametrize("args,expected", [
    ((0.5, 0.95, 1.5, 3.0), (REPRODUCED, REPRODUCED)),
    ((0.95, 0.5, 3.0, 1.5), (NOT_REPRODUCED, NOT_REPRODUCED)),
    ((0.8, 0.8, 2.0, 2.0), (INCONCLUSIVE, INCONCLUSIVE)),
])
def test_temperature_claims_on_both_sides_and_in_between(args, expected):
    claims = temperature_claims(_study_rows(*args), 0.0, 1.5)
    got = (claims["lm-temperature-diversity"].verdict, claims["lm-temperature-likelihood"].verdict)
    assert got == expected
    assert "20 prompts" in claims["lm-temperature-diversity"].uncertainty


def test_temperature_claims_pair_prompts_and_say_when_they_cannot_measure():
    rows = _study_rows(0.5, 0.95, 1.5, 3.0)
    for r in rows:
        r.pop("judge_bits_per_char")                            # no SmolLM2 on this machine
    claims = temperature_claims(rows, 0.0, 1.5)
    assert claims["lm-temperature-diversity"].verdict == REPRODUCED
    evidence, held = claims["lm-temperature-likelihood"]
    assert held is None and verdict(held) == "NOT RUN" and "not measured" in evidence
    means = per_prompt(rows, 1.5, "distinct_2")                 # the mean of each prompt's two samples
    two = [r["distinct_2"] for r in rows if r["temperature"] == 1.5 and r["prompt_index"] == 3]
    assert len(means) == 20 and means[3] == pytest.approx(sum(two) / 2)


def test_distinct_n_counts_what_it_says():
    assert distinct_n(["a b a b", "a b c"], 1) == pytest.approx(3 / 7)
    assert distinct_n(["a b a b", "a b c"], 2) == pytest.approx(3 / 5)
    assert distinct_n(["a b a b a b"], 2) == pytest.approx(2 / 5)
    assert np.isnan(distinct_n(["one"], 2))


def test_temperature_table_prints_the_interval_it_promises():
    from hfrepro.reproduce.lm import _with_interval

    s = {"distinct_2": 0.5, "distinct_2_lo": 0.25, "distinct_2_hi": 0.75}
    assert _with_interval(s, "distinct_2") == "0.500 [0.250, 0.750]"
    assert _with_interval(s, "judge_bits_per_char") is None        # no SmolLM2 on the machine: no column value
