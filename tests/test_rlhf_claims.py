"""The RLHF stage's claims (hfrepro/reproduce/rlhf.py) on synthetic results: each claim on both sides of its
threshold and inside the inconclusive band, and never decided by an interval that cannot exist (< 2 items)."""

from __future__ import annotations

import json
import math
import random

import pytest

from hfrepro.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
from hfrepro.reproduce import rlhf as stage

KINDS = ("echo", "repeated", "sentence", "truncated", "wrong")


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def pairs(tmp_path, acc: dict[str, float], n: int = 100):
    """n held-out pairs per kind, a share `acc[kind]` of them ranked right."""
    rows = [{"kind": k, "chosen": 1.0, "rejected": 0.0, "right": i < round(a * n)}
            for k, a in acc.items() for i in range(n)]
    write_jsonl(tmp_path / "reward" / "eval_pairs.jsonl", rows)
    return {d.claim: d for d in stage.rm_claims(tmp_path / "reward")}


@pytest.mark.parametrize("acc,overall,every", [
    ({k: 0.97 for k in KINDS}, REPRODUCED, REPRODUCED),
    ({**{k: 0.97 for k in KINDS}, "echo": 0.42}, REPRODUCED, NOT_REPRODUCED),   # today's echo problem, caught
    ({**{k: 0.97 for k in KINDS}, "echo": 0.72}, REPRODUCED, INCONCLUSIVE),     # the worst kind near 0.7
    ({k: 0.8 for k in KINDS}, INCONCLUSIVE, REPRODUCED),                        # overall right at 0.8
    ({k: 0.5 for k in KINDS}, NOT_REPRODUCED, NOT_REPRODUCED),                  # chance
])
def test_reward_model_claims(tmp_path, acc, overall, every):
    d = pairs(tmp_path, acc)
    assert d["rm-ranks-pairs"].verdict == overall, d["rm-ranks-pairs"].summary()
    assert d["rm-every-kind"].verdict == every, d["rm-every-kind"].summary()
    assert d["rm-every-kind"].estimate == pytest.approx(min(acc.values()), abs=0.011)


def test_reward_model_claims_need_two_pairs_per_kind(tmp_path):
    write_jsonl(tmp_path / "reward" / "eval_pairs.jsonl",
                [{"kind": "echo", "chosen": 1, "rejected": 0, "right": True}])
    d = {x.claim: x for x in stage.rm_claims(tmp_path / "reward")}
    assert d["rm-ranks-pairs"].verdict == INCONCLUSIVE and d["rm-every-kind"].verdict == INCONCLUSIVE
    assert stage.worst_group_bootstrap({"a": [1.0, 1.0], "b": [0.0]})[1] != stage.worst_group_bootstrap(
        {"a": [1.0, 1.0], "b": [0.0]})[1]  # NaN: no interval from one item


def evals(tmp_path, n=60, gain=0.0, em=(0.4, 0.4), echo=(0.1, 0.1), kl=0.5, seed=0):
    """Held-out records of the SFT policy and PPO on the same n prompts."""
    rng = random.Random(seed)
    base, pol = [], []
    for i in range(n):
        r0 = rng.gauss(2.0, 1.0)
        base.append({"prompt": f"q{i}", "reward_sampled": r0, "em_sampled": float(i < em[0] * n),
                     "em_greedy": float(i < em[0] * n), "echo_sampled": float(i < echo[0] * n), "kl": 0.0})
        pol.append({"prompt": f"q{i}", "reward_sampled": r0 + gain + rng.gauss(0, 0.3),
                    "em_sampled": float(i < em[1] * n), "em_greedy": float(i < em[1] * n),
                    "echo_sampled": float(i < echo[1] * n), "kl": kl + rng.gauss(0, 0.1)})
    write_jsonl(tmp_path / "sft" / "eval_samples.jsonl", base)
    write_jsonl(tmp_path / "ppo" / "eval_samples.jsonl", pol)


def ppo(tmp_path, log=None, **kw):
    evals(tmp_path, **kw)
    write_jsonl(tmp_path / "ppo" / "log.jsonl", log if log is not None else
                [{"step": s, "kl": 0.3, "kl_se": 0.05} for s in range(1, 6)])
    return stage.ppo_claims(tmp_path)


@pytest.mark.parametrize("gain,verdict", [(0.5, REPRODUCED), (-0.5, NOT_REPRODUCED), (0.0, INCONCLUSIVE)])
def test_reward_gain(tmp_path, gain, verdict):
    assert ppo(tmp_path, gain=gain)["ppo-reward-gain"].verdict == verdict


@pytest.mark.parametrize("em,verdict", [((0.4, 0.6), REPRODUCED), ((0.6, 0.4), NOT_REPRODUCED),
                                        ((0.4, 0.4), INCONCLUSIVE), ((0.40, 0.4167), INCONCLUSIVE)])
def test_exact_match_gain(tmp_path, em, verdict):
    d = ppo(tmp_path, gain=0.5, em=em)["ppo-exact-match"]
    assert d.verdict == verdict, d.summary()


@pytest.mark.parametrize("echo,verdict", [((0.2, 0.0), REPRODUCED), ((0.1, 0.5), NOT_REPRODUCED),
                                          ((0.1, 0.15), INCONCLUSIVE)])
def test_echo_hack_is_caught(tmp_path, echo, verdict):
    d = ppo(tmp_path, echo=echo)["ppo-no-echo"]
    assert d.verdict == verdict and not d.higher, d.summary()


@pytest.mark.parametrize("log,kl,verdict", [
    ([{"step": s, "kl": 0.5, "kl_se": 0.1} for s in range(1, 6)], 0.5, REPRODUCED),
    ([{"step": 1, "kl": 0.5, "kl_se": 0.1}, {"step": 2, "kl": 3.0, "kl_se": 0.2}], 0.5, NOT_REPRODUCED),
    ([{"step": 1, "kl": 0.5, "kl_se": 0.1}, {"step": 2, "kl": 1.9, "kl_se": 0.2}], 0.5, INCONCLUSIVE),
    ([{"step": 1, "kl": 0.5, "kl_se": 0.1}], 2.6, NOT_REPRODUCED),             # held-out KL over the bound
    ([{"step": 1, "kl": 0.5, "kl_se": None}], 0.5, INCONCLUSIVE),              # a step without its interval
])
def test_kl_bound_at_every_logged_update(tmp_path, log, kl, verdict):
    d = ppo(tmp_path, log=log, kl=kl)["ppo-kl-bound"]
    assert d.verdict == verdict, d.summary()


def test_ppo_claims_with_fewer_than_two_prompts_are_inconclusive(tmp_path):
    d = ppo(tmp_path, n=1, gain=5.0, em=(0.0, 1.0))
    for claim in ("ppo-reward-gain", "ppo-exact-match", "ppo-no-echo"):
        assert d[claim].verdict == INCONCLUSIVE and math.isnan(d[claim].lo), claim


def test_ppo_claims_need_the_same_prompts(tmp_path):
    evals(tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "ppo" / "eval_samples.jsonl").read_text().splitlines()]
    write_jsonl(tmp_path / "ppo" / "eval_samples.jsonl", rows[1:])  # one prompt short: not paired
    d = stage.ppo_claims(tmp_path)
    assert d["ppo-reward-gain"].verdict == INCONCLUSIVE


def ladder(tmp_path, reinforce, rloo, a2c):
    for algo, var in (("reinforce", reinforce), ("rloo", rloo), ("a2c", a2c)):
        write_jsonl(tmp_path / algo / "log.jsonl", [{"step": i + 1, "grad_var": v} for i, v in enumerate(var)])
    return stage.ladder_claims(tmp_path)


def test_variance_claims(tmp_path):
    d = ladder(tmp_path, [10.0, 12.0, 9.0, 11.0], [1.0, 1.2, 0.8, 1.1], [20.0, 30.0, 25.0, 22.0])
    assert d["rlhf-baseline-variance"].verdict == REPRODUCED
    assert d["rlhf-baseline-variance"].estimate == pytest.approx(math.log(10), abs=0.1)
    assert d["rlhf-critic-variance"].verdict == NOT_REPRODUCED
    d = ladder(tmp_path, [1.0, 2.0, 1.0, 2.0], [2.0, 1.0, 2.0, 1.0], [1.0, 2.0, 1.0, 2.0])  # no difference
    assert d["rlhf-baseline-variance"].verdict == INCONCLUSIVE and d["rlhf-critic-variance"].verdict == INCONCLUSIVE
    d = ladder(tmp_path, [10.0], [1.0], [1.0])  # one update: no interval
    assert d["rlhf-baseline-variance"].verdict == INCONCLUSIVE
    d = ladder(tmp_path, [10.0, 11.0], [], [])  # RLOO did not log: nothing to pair
    assert d["rlhf-baseline-variance"].verdict == INCONCLUSIVE and math.isnan(d["rlhf-baseline-variance"].estimate)
    d = ladder(tmp_path, [], [], [])  # the ladder did not run at this budget
    assert d["rlhf-baseline-variance"] == ("the ladder did not run at this budget", None)


def test_ppo_claims_not_run_without_ppo(tmp_path):
    assert stage.ppo_claims(tmp_path)["ppo-reward-gain"] == ("PPO did not run at this budget", None)
