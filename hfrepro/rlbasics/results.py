"""The RL chapter's results as people read them: summaries, Markdown tables, PNG plots, model-card text."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from hfrepro.fsutil import atomic_write_json
from hfrepro.report import md_table, pyplot, save_figure
from hfrepro.rlbasics import evaluation, reinforce, tabular

LABELS = {"q_learning": "Q-learning", "sarsa": "SARSA", "greedy": "Q-learning, ε = 0 (no exploration)",
          "reinforce": "REINFORCE", "reinforce_baseline": "REINFORCE + baseline V(s)", "a2c": "A2C", "ppo": "PPO",
          "dqn": "DQN"}
LIBRARY = {"reinforce": "hfrepro (ours)", "reinforce_baseline": "hfrepro (ours)", "a2c": "stable-baselines3",
           "ppo": "stable-baselines3", "dqn": "stable-baselines3"}
KIND = {"reinforce": "policy gradient (Monte Carlo)", "reinforce_baseline": "policy gradient + critic as baseline",
        "a2c": "actor-critic", "ppo": "actor-critic, clipped surrogate + GAE", "dqn": "value-based, off-policy"}
ESTIMATOR_LABELS = {"reinforce": "G_t (REINFORCE)", "baseline": "G_t − V(s_t) (baseline)",
                    "td": "r_t + γV(s_t+1) − V(s_t) (one-step actor-critic)"}


def _by_algo(runs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in runs:
        out.setdefault(r["algo"], []).append(r)
    return out


# --- summaries (what metrics.json keeps) --------------------------------------------------------------------

def summarize_frozenlake(runs: list[dict], reference: dict, optimal_q: np.ndarray, lake: dict) -> dict:
    learners = {}
    for name, rs in _by_algo(runs).items():
        learners[name] = {"seeds": [r["seed"] for r in rs],
                          "success": [float(np.mean(r["eval_success"])) for r in rs],
                          "train_success_last_10pct": [float(np.mean(r["train_success"][-max(1, len(
                              r["train_success"]) // 10):])) for r in rs],
                          "policy_map": tabular.policy_map(np.array(rs[0]["q"]), **lake),
                          "start_value": float(np.max(rs[0]["q"][0])),
                          "cpu_seconds": [r["cpu_seconds"] for r in rs]}
    return {"map": lake["map_name"], "slippery": lake["slippery"], "eval_episodes": len(reference["random"]),
            "random_success": float(np.mean(reference["random"])),
            "optimal_success": float(np.mean(reference["optimal"])),
            "optimal_start_value": float(optimal_q[0].max()),
            "optimal_policy_map": tabular.policy_map(optimal_q, **lake), "learners": learners}


def summarize_cartpole(runs: list[dict], solved: float) -> dict:
    algos = {}
    for name, rs in _by_algo(runs).items():
        algos[name] = {"seeds": [r["seed"] for r in rs], "steps": [r["steps"] for r in rs],
                       "final_return": [r["curve"][-1][1] for r in rs],
                       "best_return": [max(c[1] for c in r["curve"]) for r in rs],
                       "mean_return_over_training": [float(np.mean([c[1] for c in r["curve"]])) for r in rs],
                       "steps_to_solve": [evaluation.steps_to_reach(r["curve"], solved) for r in rs],
                       "cpu_seconds": [r["cpu_seconds"] for r in rs]}
    variance = [{"seed": r["seed"], **v} for r in runs if r["algo"] == "reinforce_baseline" for v in r["variance"]]
    return {"solved_at": solved, "algorithms": algos, "variance": variance}


def variance_log_ratios(variance: list[dict]) -> dict[int, float]:
    """Per training seed: the mean over snapshots of log(variance with the baseline / variance without)."""
    per_seed: dict[int, list[float]] = {}
    for v in variance:
        per_seed.setdefault(v["seed"], []).append(math.log(v["baseline"] / v["reinforce"]))
    return {s: float(np.mean(xs)) for s, xs in per_seed.items()}


def write_raw(folder: Path, lake_runs: list[dict], pole_runs: list[dict], reference: dict) -> None:
    """Every number behind the tables: per-episode evaluation results and every learning curve."""
    atomic_write_json(folder / "frozenlake.json", {
        "random": [int(x) for x in reference["random"]], "optimal": [int(x) for x in reference["optimal"]],
        "learners": [{k: r[k] for k in ("algo", "seed", "eval_success", "q")} for r in lake_runs]})
    atomic_write_json(folder / "cartpole.json", [{k: r.get(k) for k in ("algo", "seed", "steps", "curve",
                                                                          "train_returns", "variance")}
                                                  for r in pole_runs])


# --- plots --------------------------------------------------------------------------------------------------

def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(window, len(x)))
    return np.convolve(x, np.ones(window) / window, mode="valid")


def frozenlake_figure(runs: list[dict], summary: dict, path: Path) -> Path:
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    names = list(summary["learners"])
    for name, rs in _by_algo(runs).items():
        n = len(rs[0]["train_success"])
        window = max(20, n // 30)
        curves = np.stack([_moving_average(np.asarray(r["train_success"], float), window) for r in rs])
        x = np.arange(window, n + 1)
        ax.plot(x, curves.mean(0), label=LABELS[name])
        ax.fill_between(x, curves.min(0), curves.max(0), alpha=0.2)
    for key, style, label in (("optimal_success", "--", "optimal (value iteration), greedy"),
                              ("random_success", ":", "random policy")):
        ax.axhline(summary[key], color="k", linestyle=style, linewidth=1, label=label)
    ax.set(xlabel="training episode", ylabel=f"success rate (moving average, {window} episodes)",
           title="While learning (epsilon-greedy behaviour; mean and range over seeds)", ylim=(0, 1))
    ax.legend(fontsize=8)
    bars = [summary["random_success"]] + [np.mean(summary["learners"][k]["success"]) for k in names] + \
        [summary["optimal_success"]]
    short = {"q_learning": "Q-learning", "sarsa": "SARSA", "greedy": "Q-learning\nε = 0"}
    labels = ["random"] + [short[k] for k in names] + ["optimal\n(planned)"]
    bx.bar(range(len(bars)), bars, color="lightgray", edgecolor="k")
    for i, k in enumerate(names, start=1):
        seeds = summary["learners"][k]["success"]
        bx.plot([i] * len(seeds), seeds, "o", color="C0", markersize=4)
    bx.set_xticks(range(len(bars)), labels, fontsize=7)
    bx.set(ylabel="greedy policy's success rate", ylim=(0, 1),
           title=f"Greedy policy, {summary['eval_episodes']:,} test episodes (dots: seeds)")
    return save_figure(fig, path)


def cartpole_figure(runs: list[dict], summary: dict, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, rs in _by_algo(runs).items():
        n = min(len(r["curve"]) for r in rs)
        xs = np.array([[c[0] for c in r["curve"][:n]] for r in rs]).mean(0)  # REINFORCE's differ by a batch
        ys = np.array([[c[1] for c in r["curve"][:n]] for r in rs])
        ax.plot(xs, ys.mean(0), marker=".", label=f"{LABELS[name]} ({len(rs)} seeds)")
        ax.fill_between(xs, ys.min(0), ys.max(0), alpha=0.15)
    ax.axhline(summary["solved_at"], color="k", linestyle="--", linewidth=1, label="solved (475)")
    ax.set(xlabel="environment steps", ylabel="greedy return (mean of the evaluation episodes)",
           title="CartPole-v1: mean over seeds, shaded: min to max", ylim=(0, 510))
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def variance_figure(summary: dict, path: Path) -> Path | None:
    rows = summary["variance"]
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.axhline(1.0, color="C0", linewidth=1.5, label=f"{ESTIMATOR_LABELS['reinforce']} = 1")
    for i, key in enumerate(reinforce.ESTIMATORS[1:], start=1):
        ax.scatter([r["steps"] for r in rows], [r[key] / r["reinforce"] for r in rows], color=f"C{i}", s=22,
                   label=ESTIMATOR_LABELS[key])
    ax.set_yscale("log")
    ax.set(xlabel="training steps of REINFORCE + baseline when measured",
           ylabel="gradient variance / REINFORCE's (log)",
           title="Same policy, same episodes, three weights ψ_t (dots: seeds × snapshots)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


# --- tables -------------------------------------------------------------------------------------------------

def vocabulary(map_name: str = "4x4", slippery: bool = True, epsilon: tuple = (1.0, 0.05)) -> list[dict]:
    """The source material's RL vocabulary on the real objects (read from the live environments)."""
    import gymnasium as gym

    lake, pole = tabular.make_env(map_name, slippery), gym.make(evaluation.ENV_ID)
    return [
        {"term": "environment", "FrozenLake": f"`gym.make(\"FrozenLake-v1\", map_name=\"{map_name}\", "
                                              f"is_slippery={slippery})`",
         "CartPole": "`gym.make(\"CartPole-v1\")`"},
        {"term": "agent", "FrozenLake": "a Q-table and its update rule (tabular.py)",
         "CartPole": "a policy network and its learning rule (reinforce.py; stable-baselines3)"},
        {"term": "state", "FrozenLake": f"`{lake.observation_space}`: the cell",
         "CartPole": f"`Box{pole.observation_space.shape}`: cart position, velocity, pole angle, angular velocity"},
        {"term": "action", "FrozenLake": f"`{lake.action_space}`: ← ↓ → ↑",
         "CartPole": f"`{pole.action_space}`: push left, push right"},
        {"term": "reward", "FrozenLake": "1 on reaching the goal G, else 0",
         "CartPole": "+1 per step the pole stays up (episode: at most 500)"},
        {"term": "policy", "FrozenLake": "argmax_a Q(s, a): the arrows below",
         "CartPole": "π_θ(a|s): a network's softmax; greedy = its argmax"},
        {"term": "value function", "FrozenLake": "Q(s, a), V(s) = max_a Q(s, a)",
         "CartPole": "the critic V(s) (REINFORCE + baseline, A2C, PPO); Q(s, a) (DQN)"},
        {"term": "exploration vs exploitation", "FrozenLake": f"ε-greedy, ε from {epsilon[0]:g} to {epsilon[1]:g}, "
                                                              "vs ε = 0",
         "CartPole": "sampling from π vs its argmax; DQN's ε-greedy"},
        {"term": "model-free vs model-based", "FrozenLake": "Q-learning, SARSA (samples) vs value iteration "
                                                            "(`env.unwrapped.P`)",
         "CartPole": "all model-free"},
    ]


def _steps_cell(steps: list, budget: list) -> str:
    return ", ".join(f"{s:,}" if s is not None else f"not within {b:,}" for s, b in zip(steps, budget))


def _mean_sd(xs: list[float], digits: int = 0) -> str:
    if len(xs) < 2:
        return f"{xs[0]:.{digits}f}" if xs else "n/a"
    return f"{np.mean(xs):.{digits}f} ± {np.std(xs, ddof=1):.{digits}f}"


def frozenlake_rows(s: dict) -> list[dict]:
    rows = [{"policy": "random", "how it acts": "a random action", "success rate (test)": s["random_success"],
             "per seed": "—"}]
    for name, m in s["learners"].items():
        rows.append({"policy": LABELS[name], "how it acts": "greedy on its learned Q-table",
                     "success rate (test)": float(np.mean(m["success"])),
                     "per seed": ", ".join(f"{x:.3f}" for x in m["success"])})
    rows.append({"policy": "optimal (value iteration)", "how it acts": "greedy on Q* planned with the model",
                 "success rate (test)": s["optimal_success"], "per seed": "—"})
    return rows


def cartpole_rows(s: dict) -> list[dict]:
    rows = []
    for name, m in s["algorithms"].items():
        reached = sum(x is not None for x in m["steps_to_solve"])
        rows.append({"algorithm": LABELS[name], "kind": KIND[name], "library": LIBRARY[name],
                     "seeds solved": f"{reached} of {len(m['seeds'])}",
                     "steps to 475 (per seed)": _steps_cell(m["steps_to_solve"], m["steps"]),
                     "final greedy return": _mean_sd(m["final_return"]),
                     "CPU s per seed": _mean_sd(m["cpu_seconds"], 1)})
    return rows


def variance_rows(s: dict) -> list[dict]:
    return [{"seed": v["seed"], "after steps": v["steps"], "mean episode length": round(v["episode_length"]),
             "G_t": f"{v['reinforce']:.3g}", "G_t − V(s_t)": f"{v['baseline']:.3g}", "TD advantage": f"{v['td']:.3g}",
             "baseline / none": v["baseline"] / v["reinforce"], "TD / none": f"{v['td'] / v['reinforce']:.2g}"}
            for v in s["variance"]]


def markdown(m: dict, rel: Callable[[str], str]) -> str:
    """The chapter's tables and figures; `rel(name)` maps a file of the run folder to a link."""
    f, c = m["frozenlake"], m["cartpole"]
    maps = ["| " + " | ".join(LABELS[k] for k in f["learners"]) + " | optimal (value iteration) |",
            "|" + "---|" * (len(f["learners"]) + 1)]
    cells = [v["policy_map"] for v in f["learners"].values()] + [f["optimal_policy_map"]]
    maps += ["| " + " | ".join(f"`{cell[r]}`" for cell in cells) + " |" for r in range(len(cells[0]))]
    md = ["### The vocabulary, on the real objects", "", md_table(m["vocabulary"]), "",
          f"### FrozenLake {f['map']} ({'slippery' if f['slippery'] else 'not slippery'}): tabular Q-learning and "
          f"SARSA", "", f"Each greedy policy played the same {f['eval_episodes']:,} test episodes.", "",
          md_table(frozenlake_rows(f)), "", "Greedy policies of the first seed (H hole, G goal):", "",
          *maps, "", f"![FrozenLake learning curves and test success]({rel('frozenlake.png')})", "",
          "*Left: how often the ε-greedy behaviour reached the goal while learning (flat near zero for ε = 0: "
          "without exploration Q-learning keeps to the first path it found); right: the learned greedy "
          "policies against a random policy and the planned optimum.*", "",
          "### CartPole-v1: REINFORCE, A2C, PPO, DQN", "",
          f"Steps to reach a greedy mean return of {c['solved_at']:.0f} (CartPole's 'solved'), measured every "
          "evaluation interval on the same starts for every agent; 'not within N' means the run's budget of N "
          "steps ended first.", "", md_table(cartpole_rows(c)), "",
          f"![CartPole learning curves]({rel('cartpole.png')})", "",
          "*Greedy return against environment steps: read how soon each curve reaches the dashed line.*", ""]
    if c["variance"]:
        md += ["### The variance of the policy-gradient estimate", "",
               "The same policy (REINFORCE + baseline, at snapshots of its training) and the same sampled "
               "episodes; only the weight ψ_t of ∇log π(a_t|s_t) differs. Variance = trace of the covariance of "
               "the one-episode estimate.", "", md_table(variance_rows(c)), "",
               f"![variance of the gradient estimate]({rel('gradient_variance.png')})", "",
               "*Each dot is a variance relative to plain REINFORCE's on the same episodes (below 1: lower). The "
               "baseline lowers it without changing the expected gradient; the one-step TD advantage lowers it "
               "by orders of magnitude, at the price of the critic's bias.*", ""]
    return "\n".join(md)


def summary_text(m: dict) -> str:
    f, c = m["frozenlake"], m["cartpole"]
    lines = [f"FrozenLake success: random {f['random_success']:.3f}, optimal {f['optimal_success']:.3f}, " +
             ", ".join(f"{LABELS[k]} {np.mean(v['success']):.3f}" for k, v in f["learners"].items())]
    lines += [f"CartPole {LABELS[k]}: final greedy return {_mean_sd(v['final_return'])}, steps to 475: "
              f"{_steps_cell(v['steps_to_solve'], v['steps'])}" for k, v in c["algorithms"].items()]
    lines.append(f"CPU time: {m['cpu_seconds']:.0f} s in {m['processes']} process(es)")
    return "\n".join(lines)


# --- model cards --------------------------------------------------------------------------------------------

def saved_model_eval(job, run: dict) -> dict:
    """The held-out evaluation of a saved agent (a job's first training seed), as the Hub's RL cards state it:
    mean_reward and std_reward of its greedy policy over the test episodes, which start from seeds no training
    episode used (`evaluation.eval_seed`). FrozenLake's reward is 1 at the goal, so mean_reward is its success
    rate; CartPole's is the episode's length (500 at most)."""
    s = job.settings
    if job.kind == "tabular":
        won = np.asarray(run["eval_success"], dtype=float)
        mean, std, n, env = float(won.mean()), float(won.std()), len(won), tabular.ENV_ID
        where = {"map_name": s["map_name"], "is_slippery": s["slippery"]}
    else:
        _, mean, std = run["curve"][-1][:3]
        n, env, where = s["eval_episodes"], evaluation.ENV_ID, {}
    return {"env_id": env, **where, "mean_reward": float(mean), "std_reward": float(std), "n_eval_episodes": n,
            "eval_seeds": [s["eval_seed"], s["eval_seed"] + n - 1], "training_seed": run["seed"],
            "training_steps": run.get("steps")}


def card_metrics(ev: dict) -> dict:
    return {k: ev[k] for k in ("mean_reward", "std_reward", "n_eval_episodes", "training_steps") if ev.get(k)
            is not None}


def card_description(name: str, ev: dict) -> str:
    test = (f"{ev['n_eval_episodes']:,} test episodes (starts seeded {ev['eval_seeds'][0]:,} to "
            f"{ev['eval_seeds'][1]:,}, which no training episode used)")
    if ev["env_id"].startswith("FrozenLake"):
        return (f"The Q-table of {LABELS[name]} after its training on FrozenLake {ev['map_name']}"
                f"{' (slippery)' if ev['is_slippery'] else ''} (`q_table.safetensors`, states × actions), training "
                f"seed {ev['training_seed']}; its greedy policy reached the goal in {ev['mean_reward']:.1%} of "
                f"{test}: `mean_reward` is that success rate.")
    return (f"The policy of {LABELS[name]} ({KIND[name]}, {LIBRARY[name]}) after {ev['training_steps']:,} "
            f"environment steps on CartPole-v1, training seed {ev['training_seed']}; greedy return "
            f"{ev['mean_reward']:.1f} ± {ev['std_reward']:.1f} (mean ± standard deviation) over {test}.")


def how_to_load(name: str) -> str:
    state = "[0, 14]   # FrozenLake: cells" if name in ("q_learning", "sarsa", "greedy") else \
        "[[0.0, 0.0, 0.02, 0.0]]   # CartPole: cart position, velocity, pole angle, angular velocity"
    return ("from hfrepro.rlbasics import saved\n\n"
            "agent = saved.load(\"path/to/this/folder\")   # config.json + safetensors, no pickle\n"
            f"states = {state}\n"
            "actions = agent.act(states)                  # greedy actions, one per state\n"
            "# or, from a shell: hfrepro rl-play path/to/this/folder")
