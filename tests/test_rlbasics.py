"""RL basics (hfrepro.rlbasics): the update rules, the estimators, evaluation and the job runner, on tiny cases
that finish in seconds."""

import math

import numpy as np
import pytest
import torch

from hfrepro.errors import UserError
from hfrepro.rlbasics import evaluation, jobs, reinforce, sb3, tabular


def _settings(method, episodes=300, eps=(1.0, 0.05)):
    return tabular.TabularSettings(method=method, episodes=episodes, alpha=0.5, gamma=0.9, epsilon_start=eps[0],
                                   epsilon_end=eps[1], epsilon_decay=0.5)


# --- FrozenLake ---------------------------------------------------------------------------------------------

def test_value_iteration_plans_the_shortest_path_on_still_ice():
    q = tabular.value_iteration(slippery=False, gamma=0.9)
    assert q[0].max() == pytest.approx(0.9 ** 5)          # 6 steps to G, the reward on the last one
    assert tabular.evaluate(tabular.greedy(q), 5, seed=0, slippery=False).tolist() == [1] * 5


def test_value_iteration_on_slippery_ice_is_the_known_optimum():
    q = tabular.value_iteration(slippery=True, gamma=0.99)
    success = tabular.evaluate(tabular.greedy(q), 2000, seed=1).mean()
    assert 0.70 < success < 0.80                          # ~0.74: the best any policy can do on this lake
    assert tabular.evaluate(tabular.random_policy(0), 2000, seed=1).mean() < 0.05


@pytest.mark.parametrize("method", ["q_learning", "sarsa"])
def test_tabular_learners_find_the_goal_on_still_ice(method):
    out = tabular.train(_settings(method), seed=0, slippery=False)
    assert tabular.evaluate(tabular.greedy(out["q"]), 3, seed=0, slippery=False).tolist() == [1, 1, 1]
    assert out["train_success"][-50:].mean() > out["train_success"][:50].mean()
    assert 0 < out["q"].max() <= 1


def test_q_learning_is_off_policy_and_sarsa_on_policy():
    """Behaving at random (epsilon = 1) on still ice with alpha = 1, Q-learning's target max_a' Q(s', a') learns the
    optimal Q* that value iteration plans; SARSA's target Q(s', a') learns the value of the random behaviour."""
    explore_only = dict(episodes=3000, eps=(1.0, 1.0))
    q_star = tabular.value_iteration(slippery=False, gamma=0.9)
    s = _settings("q_learning", **explore_only)
    s.alpha = 1.0
    q = tabular.train(s, seed=0, slippery=False)["q"]
    assert np.allclose(q, q_star)
    s.method = "sarsa"
    q_sarsa = tabular.train(s, seed=0, slippery=False)["q"]
    assert q_sarsa[0].max() < 0.5 * q_star[0].max()


def test_a_seed_fixes_the_learning():
    a, b, c = (tabular.train(_settings("q_learning", episodes=300), seed=s) for s in (3, 3, 4))
    assert a["q"].max() > 0 and np.array_equal(a["q"], b["q"]) and not np.array_equal(a["q"], c["q"])


def test_epsilon_greedy_explores_and_exploits():
    rng = np.random.default_rng(0)
    row = np.array([0.0, 2.0, 1.0, 2.0])
    greedy_picks = {tabular.epsilon_greedy(row, 0.0, rng) for _ in range(200)}
    assert greedy_picks == {1, 3}                         # only the best actions, ties at random
    random_picks = [tabular.epsilon_greedy(row, 1.0, rng) for _ in range(400)]
    assert set(random_picks) == {0, 1, 2, 3}
    s = _settings("q_learning", episodes=100)
    assert tabular.epsilon_at(0, s) == 1.0 and tabular.epsilon_at(25, s) == pytest.approx(0.525)
    assert tabular.epsilon_at(50, s) == pytest.approx(0.05) and tabular.epsilon_at(99, s) == 0.05


def test_unknown_tabular_method():
    with pytest.raises(ValueError):
        tabular.train(_settings("dyna"), seed=0)


def test_policy_map_draws_arrows_holes_and_goal():
    q = np.zeros((16, 4))
    q[:, 2] = 1  # always right
    rows = tabular.policy_map(q)
    assert rows[0] == "→ → → →" and rows[1] == "→ H → H" and rows[3] == "H → → G"


# --- CartPole: REINFORCE ------------------------------------------------------------------------------------

def test_returns_to_go_by_hand():
    g = reinforce.returns_to_go(np.array([1.0, 1.0, 1.0]), gamma=0.5)
    assert g.tolist() == [1.75, 1.5, 1.0]


def _episode():
    states = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    return reinforce.Episode(states, np.array([0, 1, 1, 0, 1, 0]), np.ones(6, np.float32), states[-1], True)


def test_reinforce_update_makes_rewarded_actions_more_likely():
    torch.manual_seed(0)
    policy, e = reinforce.mlp(4, 2, 16), _episode()
    opt = torch.optim.SGD(policy.parameters(), lr=0.01)

    def logp():
        with torch.no_grad():
            dist = torch.distributions.Categorical(logits=policy(torch.as_tensor(e.states)))
            return dist.log_prob(torch.as_tensor(e.actions)).sum().item()
    before = logp()
    reinforce.update(policy, None, opt, None, [e], gamma=0.99)
    assert logp() > before                                # every return is positive: push every action up


def test_reinforce_with_baseline_trains_the_critic_towards_the_returns():
    torch.manual_seed(0)
    policy, critic, e = reinforce.mlp(4, 2, 16), reinforce.mlp(4, 1, 16), _episode()
    g = torch.as_tensor(reinforce.returns_to_go(e.rewards, 0.99))
    popt, copt = torch.optim.Adam(policy.parameters(), 1e-3), torch.optim.Adam(critic.parameters(), 1e-2)

    def err():
        with torch.no_grad():
            return ((critic(torch.as_tensor(e.states)).squeeze(-1) - g) ** 2).mean().item()
    before = err()
    for _ in range(20):
        reinforce.update(policy, critic, popt, copt, [e], gamma=0.99)
    assert err() < before


class _Constant(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full((x.shape[0], 1), float(self.value))


def test_gradient_variance_estimators():
    torch.manual_seed(0)
    policy = reinforce.mlp(4, 2, 8)
    zero = reinforce.gradient_variance(policy, _Constant(0.0), episodes=6, seed=5, gamma=0.99)
    assert zero["baseline"] == pytest.approx(zero["reinforce"])    # b = 0: plain REINFORCE
    assert zero["td"] < zero["reinforce"]                            # psi = r_t = 1 vs G_t up to ~episode length
    again = reinforce.gradient_variance(policy, _Constant(0.0), episodes=6, seed=5, gamma=0.99)
    assert again == zero                                             # seeded: the same episodes
    good = reinforce.gradient_variance(policy, _Constant(zero["episode_length"] / 2), episodes=6, seed=5,
                                       gamma=0.99)
    assert good["reinforce"] == pytest.approx(zero["reinforce"])
    assert good["baseline"] < good["reinforce"]                      # a baseline near the returns helps


def test_reinforce_train_is_seeded_and_keeps_snapshots():
    s = reinforce.ReinforceSettings(steps=300, baseline=True, episodes_per_update=4, learning_rate=0.01, gamma=0.99,
                                    hidden=8)
    def ev(act):
        return [float(np.mean(evaluation.evaluate(act, 2, seed=7)))]
    a = reinforce.train(s, seed=1, evaluate=ev, eval_every=100, snapshots=2)
    b = reinforce.train(s, seed=1, evaluate=ev, eval_every=100, snapshots=2)
    assert a["curve"] == b["curve"] and a["steps"] >= 300
    assert a["curve"][0][0] == 0 and len(a["snapshots"]) == 2 and a["snapshots"][-1]["steps"] == a["steps"]


def test_reinforce_settings_are_checked():
    reinforce.check_settings({"episodes_per_update": 8, "learning_rate": 0.01, "gamma": 0.99, "hidden": 64})
    with pytest.raises(UserError, match="unknown"):
        reinforce.check_settings({"episodes_per_update": 8, "learning_rate": 0.01, "gamma": 0.99, "hidden": 64,
                                  "clip": 0.2})
    with pytest.raises(UserError, match="positive"):
        reinforce.check_settings({"episodes_per_update": 8, "learning_rate": -1, "gamma": 0.99, "hidden": 64})


# --- evaluation ---------------------------------------------------------------------------------------------

def test_evaluation_is_the_same_for_everyone():
    def left(states):
        return np.zeros(len(states), dtype=int)
    a, b = evaluation.evaluate(left, 4, seed=3), evaluation.evaluate(left, 4, seed=3)
    assert a == b and all(5 <= r <= 20 for r in a)          # always pushing left: the pole falls at once
    assert evaluation.solved_at() == 475.0


def test_steps_to_reach_ignores_the_untrained_policy():
    curve = [[0, 500.0], [1000, 30.0], [2000, 480.0], [3000, 500.0]]
    assert evaluation.steps_to_reach(curve, 475) == 2000
    assert evaluation.steps_to_reach(curve[:2], 475) is None


# --- stable-baselines3 --------------------------------------------------------------------------------------

def test_sb3_save_and_load_without_pickle(tmp_path):
    hyper = {"n_envs": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 1, "learning_rate": "lin_0.001"}
    sb3.check_hyperparameters("ppo", hyper)
    out = sb3.train("ppo", hyper, steps=64, seed=0, evaluate=lambda act: [float(act(np.zeros((1, 4)))[0])],
                    eval_every=32)
    assert [r[0] for r in out["curve"]] == [0, 32, 64]
    sb3.save(out["model"], tmp_path / "ppo", "ppo", hyper)
    assert not list(tmp_path.rglob("*.zip")) and not list(tmp_path.rglob("*.pkl"))
    loaded = sb3.load(tmp_path / "ppo")
    obs = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    assert (loaded.predict(obs, deterministic=True)[0] == out["model"].predict(obs, deterministic=True)[0]).all()


def test_sb3_refuses_bad_hyperparameters(tmp_path):
    with pytest.raises(UserError, match="unknown hyper-parameter"):
        sb3.check_hyperparameters("dqn", {"clip_range": 0.2})
    with pytest.raises(UserError, match="lin_"):
        sb3.check_hyperparameters("a2c", {"learning_rate": "lin_fast"})
    with pytest.raises(UserError, match="unknown stable-baselines3 algorithm"):
        sb3.check_hyperparameters("trpo", {})
    with pytest.raises(UserError, match="not a saved"):
        sb3.load(tmp_path)


# --- the job runner -----------------------------------------------------------------------------------------

def test_finished_jobs_are_read_not_rerun(tmp_path):
    done = jobs.Job("nonexistent-kind", "q_learning", 0)   # would fail if it ran
    (tmp_path / f"{done.name}.json").write_text('{"algo": "q_learning", "seed": 0, "cpu_seconds": 0}')
    fresh = jobs.Job("tabular", "sarsa", 1, {"learner": {"method": "sarsa", "episodes": 20, "alpha": 0.1,
                                                         "gamma": 0.9, "epsilon_start": 1.0, "epsilon_end": 0.1,
                                                         "epsilon_decay": 0.5},
                                             "map_name": "4x4", "slippery": True, "eval_episodes": 10,
                                             "eval_seed": 0, "episodes": 20})
    out = jobs.run_all([done, fresh], tmp_path, processes=1, progress=False)
    assert out[0]["algo"] == "q_learning" and out[1]["algo"] == "sarsa" and len(out[1]["eval_success"]) == 10
    assert (tmp_path / "sarsa-seed1.json").is_file()
    assert math.isfinite(jobs.cpu_seconds())


# --- saved agents and `hfrepro rl-play` ---------------------------------------------------------------------

def test_saved_agents_load_and_act(tmp_path):
    from hfrepro.rlbasics import saved

    q = tabular.value_iteration(slippery=False, gamma=0.9)
    settings = {"map_name": "4x4", "slippery": False, "learner": {"method": "q_learning", "alpha": 0.1}}
    agent = saved.load(saved.save_table(q, tmp_path / "q", "q_learning", settings))
    assert agent.q is not None and agent.act(np.array([0, 14])).tolist() == [int(q[0].argmax()), 2]
    torch.manual_seed(0)
    policy = reinforce.mlp(4, 2, 8)
    hyper = {"episodes_per_update": 4, "learning_rate": 0.01, "gamma": 0.99, "hidden": 8}
    agent = saved.load(saved.save_nets(policy, None, tmp_path / "r", "reinforce", hyper))
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    assert agent.act(obs).tolist() == reinforce.greedy_actor(policy)(obs).tolist()
    with pytest.raises(UserError, match="no agent"):
        saved.load(tmp_path)


def test_rl_play_command(tmp_path, capsys):
    from hfrepro.cli import _main
    from hfrepro.rlbasics import saved

    q = tabular.value_iteration(slippery=False, gamma=0.9)
    saved.save_table(q, tmp_path / "q", "q_learning", {"map_name": "4x4", "slippery": False, "learner": {}})
    assert _main(["rl-play", str(tmp_path / "q"), "--episodes", "3", "--show"]) == 0
    out = capsys.readouterr().out
    assert "reached the goal in 3 of 3 episodes" in out and "step 6:" in out and "step 7:" not in out
    with pytest.raises(UserError, match="--episodes"):
        _main(["rl-play", str(tmp_path / "q"), "--episodes", "0"])


def test_sb3_training_leaves_no_logger_folder_in_the_temp_dir(tmp_path, monkeypatch):
    import tempfile

    from hfrepro.rlbasics import sb3

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))   # where SB3's default logger makes SB3-<date>/
    out = sb3.train("a2c", {}, 50, 0, lambda act: [0.0], 25)
    assert out["steps"] >= 50 and out["curve"][0][0] == 0
    assert not list(tmp_path.glob("SB3-*"))


def test_sb3_curve_ends_with_the_model_as_saved():
    """The callback's row at the last step is taken before the last gradient update: the curve's last row must
    be the trained model's own evaluation (the number its card states)."""
    hyper = {"n_envs": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 4, "learning_rate": 0.05}
    obs = np.random.default_rng(0).normal(size=(256, 4)).astype(np.float32)

    def probe(act):
        return [float(np.mean(act(obs)))]

    out = sb3.train("ppo", hyper, steps=64, seed=0, evaluate=probe, eval_every=32)
    final = probe(lambda s: out["model"].predict(s, deterministic=True)[0])
    assert [r[0] for r in out["curve"]] == [0, 32, 64] and out["curve"][-1] == [64, *final]


# --- the agents' Hub cards ----------------------------------------------------------------------------------

def _saved_lake_agent(folder, episodes=50):
    from hfrepro.rlbasics import results, saved

    settings = {"map_name": "4x4", "slippery": True, "eval_episodes": episodes, "eval_seed": 1_000_000,
                "learner": {"method": "q_learning", "alpha": 0.1}}
    saved.save_table(tabular.value_iteration(slippery=True, gamma=0.99), folder / "q_learning", "q_learning",
                     settings)
    won = saved.rewards(saved.load(folder / "q_learning"), episodes, 1_000_000)
    job = jobs.Job("tabular", "q_learning", 0, settings, str(folder / "q_learning"))
    return results.saved_model_eval(job, {"seed": 0, "eval_success": won}), won


def test_agent_card_is_a_hub_rl_card_whose_number_the_saved_agent_scores_again(tmp_path):
    import json

    from hfrepro.hubcheck import check_tree
    from hfrepro.recipes import rl_basics

    ev, won = _saved_lake_agent(tmp_path)
    rl_basics.write_cards(tmp_path, {"q_learning": ev}, config={"seed": 0})
    (check,) = check_tree(tmp_path)
    assert check.problems == [] and "saved.load (q_learning on FrozenLake-v1)" in check.loaded
    meta = check.meta
    assert meta["pipeline_tag"] == "reinforcement-learning" and meta["library_name"] == "hfrepro"
    (result,) = meta["model-index"][0]["results"]
    assert result["dataset"]["type"] == "FrozenLake-v1"
    metrics = {m["type"]: m["value"] for m in result["metrics"]}
    assert metrics == {"mean_reward": float(np.mean(won)), "std_reward": float(np.std(won))}

    # an eval.json the weights do not reproduce is caught by replaying the test episodes
    (tmp_path / "q_learning" / "eval.json").write_text(json.dumps({**ev, "mean_reward": ev["mean_reward"] + 0.1}))
    (check,) = check_tree(tmp_path)
    assert any("the loaded agent scores mean_reward" in p for p in check.problems)


def test_agent_card_must_name_an_environment_gymnasium_knows(tmp_path):
    from hfrepro.cards import check_model_folder
    from hfrepro.recipes import rl_basics

    ev, _ = _saved_lake_agent(tmp_path)
    rl_basics.write_cards(tmp_path, {"q_learning": {**ev, "env_id": "FrozenLake-v99"}}, config={})
    problems = check_model_folder(tmp_path / "q_learning", root=tmp_path)
    assert any("'FrozenLake-v99' is not a gymnasium environment id" in p for p in problems)


def test_bf16_is_refused_before_anything_is_written(tmp_path):
    """stable-baselines3's buffers cannot hold bf16 values: `--precision bf16` is refused, nothing written."""
    from hfrepro.recipes.rl_basics import cli

    with pytest.raises(UserError, match="fp32 only"):
        cli(["--budget", "tiny", "--output_dir", str(tmp_path / "run"), "--precision", "bf16"])
    assert not (tmp_path / "run").exists()
