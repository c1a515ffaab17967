"""The RL-basics stage of the main job: its claims decided on synthetic results on both sides of each threshold and
inside the inconclusive band; the recipe's refusals; and (integration) the tiny budget end to end."""

import json
import math

import pytest

from hfrepro.cards import check_model_card
from hfrepro.claims import INCONCLUSIVE, NOT_REPRODUCED, NOT_RUN, REPRODUCED, StageContext, verdict
from hfrepro.hubcheck import check_tree
from hfrepro.reproduce import rl_basics as stage
from tests.conftest import run_cli


def _lake(q, sarsa, greedy, rnd=0.02):
    return {"eval_episodes": 1000, "random_success": rnd, "optimal_success": 0.74,
            "learners": {"q_learning": {"success": q}, "sarsa": {"success": sarsa}, "greedy": {"success": greedy}}}


def _verdict(d):
    return d.verdict if hasattr(d, "verdict") else verdict(d[1])


# --- rl-tabular-beats-random: per seed min(Q, SARSA) - random, t interval, > 0 -------------------------------

def test_tabular_claim_reproduced_when_every_seed_learns():
    d = stage.tabular_claim(_lake([0.74, 0.70, 0.72], [0.60, 0.74, 0.55], [0.0, 0.0, 0.0]))
    assert d.verdict == REPRODUCED and d.lo > 0
    assert d.estimate == pytest.approx((0.60 + 0.70 + 0.55) / 3 - 0.02)   # the worse learner of each seed


def test_tabular_claim_not_reproduced_when_the_learners_are_worse_than_random():
    d = stage.tabular_claim(_lake([0.001, 0.0, 0.002], [0.0, 0.001, 0.0], [0.0] * 3, rnd=0.02))
    assert d.verdict == NOT_REPRODUCED and d.hi < 0


def test_tabular_claim_inconclusive_when_seeds_disagree():
    d = stage.tabular_claim(_lake([0.70, 0.01, 0.72], [0.70, 0.74, 0.0], [0.0] * 3))
    assert d.verdict == INCONCLUSIVE and d.lo < 0 < d.hi


def test_tabular_claim_not_run_without_sarsa():
    lake = _lake([0.7] * 3, [0.7] * 3, [0.0] * 3)
    del lake["learners"]["sarsa"]
    assert _verdict(stage.tabular_claim(lake)) == NOT_RUN


def test_one_seed_cannot_decide():
    assert stage.tabular_claim(_lake([0.7], [0.7], [0.0])).verdict == INCONCLUSIVE


# --- rl-exploration: per seed epsilon-greedy Q - epsilon=0 Q, t interval, > 0 ---------------------------------

def test_exploration_claim_both_sides_and_the_band():
    assert stage.exploration_claim(_lake([0.74, 0.55, 0.74], [0.7] * 3, [0.01, 0.18, 0.07])).verdict == REPRODUCED
    assert stage.exploration_claim(_lake([0.01, 0.02, 0.0], [0.7] * 3, [0.70, 0.72, 0.74])).verdict == \
        NOT_REPRODUCED
    d = stage.exploration_claim(_lake([0.74, 0.10, 0.70], [0.7] * 3, [0.10, 0.70, 0.05]))
    assert d.verdict == INCONCLUSIVE


# --- rl-baseline-variance: geometric mean of var(baseline)/var(none) over seeds, t interval on logs, < 1 -----

def _pole(ratios_per_seed):
    rows = []
    for seed, ratios in enumerate(ratios_per_seed):
        for k, r in enumerate(ratios):
            rows.append({"seed": seed, "steps": 1000 * (k + 1), "episode_length": 100.0, "reinforce": 1e6,
                         "baseline": 1e6 * r, "td": 1e3})
    return {"variance": rows, "algorithms": {}}


def test_variance_claim_reproduced_when_the_baseline_always_helps():
    d = stage.variance_claim(_pole([[0.8, 0.7, 0.7], [0.8, 0.7, 0.6], [0.7, 0.7, 0.7]]))
    assert d.verdict == REPRODUCED and d.hi < 1 and not d.higher
    logs = [sum(map(math.log, r)) / 3 for r in ([0.8, 0.7, 0.7], [0.8, 0.7, 0.6], [0.7, 0.7, 0.7])]
    assert d.estimate == pytest.approx(math.exp(sum(logs) / 3))


def test_variance_claim_not_reproduced_when_the_baseline_always_hurts():
    assert stage.variance_claim(_pole([[1.3, 1.4], [1.5, 1.2], [1.3, 1.3]])).verdict == NOT_REPRODUCED


def test_variance_claim_inconclusive_when_seeds_disagree():
    assert stage.variance_claim(_pole([[0.5, 0.5], [1.6, 1.5], [0.9, 1.0]])).verdict == INCONCLUSIVE


def test_variance_claim_not_run_without_the_baseline_runs():
    assert _verdict(stage.variance_claim({"variance": [], "algorithms": {}})) == NOT_RUN


# --- the recipe: bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--algorithms", "ppo", "trpo"], "unknown or repeated trpo"),
    (["--frozenlake_map", "5x5"], "not a FrozenLake map"),
    (["--dqn_steps", "0"], "--dqn_steps must be at least 1"),
])
def test_recipe_refuses_bad_arguments_before_training(tmp_path, args, message):
    from hfrepro.errors import UserError
    from hfrepro.recipes import rl_basics

    with pytest.raises(UserError, match=message):
        rl_basics.cli(["--budget", "tiny", "--output_dir", str(tmp_path / "x"), *args])
    assert not (tmp_path / "x").exists()


def test_command_line_error_is_one_message(tmp_path):
    r = run_cli("rl-basics", "--budget", "tiny", "--output_dir", tmp_path / "x", "--tabular_learners", "dyna")
    assert r.returncode == 2 and "error: --tabular_learners" in r.stderr and "Traceback" not in r.stderr


def test_training_seeds_never_overlap_across_main_job_seeds():
    from hfrepro.recipes import rl_basics

    sets = [set(rl_basics.training_seeds(s, 3)) for s in (0, 1, 2)]
    assert sets[0] == {0, 1, 2} and not (sets[0] & sets[1]) and not (sets[1] & sets[2])


# --- end to end -------------------------------------------------------------------------------------------------

@pytest.mark.integration
def test_tiny_budget_end_to_end(tmp_path):
    from hfrepro.recipes import rl_basics

    out = tmp_path / "stage"
    m = rl_basics.cli(["--budget", "tiny", "--output_dir", str(out / "rl_basics"), "--seed", "1"])
    run = out / "rl_basics"
    for f in ("frozenlake.png", "cartpole.png", "gradient_variance.png", "RESULTS.md", "frozenlake.json",
              "cartpole.json", "ppo/policy.safetensors", "ppo/README.md", "q_learning/q_table.safetensors",
              "reinforce_baseline/critic.safetensors"):
        assert (run / f).is_file(), f
    assert set(m["cartpole"]["algorithms"]) == {"reinforce", "reinforce_baseline", "a2c", "ppo", "dqn"}
    assert m["cartpole"]["algorithms"]["ppo"]["seeds"] == [2, 3]          # --seed 1 with 2 seeds
    for card in run.glob("*/README.md"):
        assert check_model_card(card) == [], card
    checks = check_tree(run)   # every agent: a Hub RL card, loaded, its held-out number scored again
    assert len(checks) == 8 and [c.problems for c in checks] == [[]] * 8
    assert len(m["cartpole"]["variance"]) == 2 * 2                        # 2 seeds x 2 snapshots
    again = rl_basics.cli(["--budget", "tiny", "--output_dir", str(run), "--seed", "1"])
    assert again == json.loads((run / "metrics.json").read_text())        # a finished run is a no-op
    ctx = StageContext(dir=out, root=tmp_path, budget="tiny", seed=1, threads=1)
    res = stage.section(ctx)
    assert set(res.claims) == {c.id for c in stage.CLAIMS}
    assert "![CartPole learning curves](stage/rl_basics/cartpole.png)" in res.markdown
    for d in res.claims.values():
        assert _verdict(d) in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)


def test_the_stage_key_covers_its_library(tmp_path, monkeypatch):
    """A change in hfrepro/rlbasics/ (the package of stage rl_basics) makes the main job re-run the stage."""
    from hfrepro.reproduce import runner
    from hfrepro.reproduce.plan import STAGES

    stage_ = next(s for s in STAGES if s.name == "rl_basics")
    (tmp_path / "rlbasics").mkdir()
    (tmp_path / "rlbasics" / "tabular.py").write_text("ALPHA = 0.1\n")
    monkeypatch.setattr(runner, "PACKAGE_DIR", tmp_path)
    before = runner.stage_key(stage_, "tiny", 0)
    (tmp_path / "rlbasics" / "tabular.py").write_text("ALPHA = 0.2\n")
    assert runner.stage_key(stage_, "tiny", 0) != before


def test_reinforce_has_its_own_seed_count(tmp_path):
    from hfrepro.config import OutputArguments, RunArguments, parse_args
    from hfrepro.recipes import rl_basics

    a, _, _ = parse_args((rl_basics.ScriptArguments, OutputArguments, RunArguments), recipe="rl_basics",
                         argv=["--budget", "tiny", "--reinforce_seeds", "4", "--cartpole_seeds", "1"])
    planned = rl_basics.cartpole_jobs(a, seed=1, out=tmp_path)
    seeds = {j.algo: [x.seed for x in planned if x.algo == j.algo] for j in planned}
    assert seeds["reinforce"] == seeds["reinforce_baseline"] == [4, 5, 6, 7] and seeds["ppo"] == [1]
    assert [j.save_to is not None for j in planned if j.algo == "reinforce"] == [True, False, False, False]
