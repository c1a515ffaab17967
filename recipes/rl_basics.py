"""Reinforcement learning basics: Q-learning and SARSA on FrozenLake; REINFORCE, A2C, PPO and DQN on CartPole.

The RL chapter of the road, on gymnasium's classic tasks with the field's libraries. Tabular Q-learning and
SARSA (our own short code, the update rules next to their equations: hfrepro/rlbasics/tabular.py) learn the
slippery FrozenLake from experience alone, and are measured against a random policy, against Q-learning with no
exploration (epsilon = 0), and against the optimum that value iteration plans from the lake's own model.
On CartPole, REINFORCE (ours, with and without a learned baseline: hfrepro/rlbasics/reinforce.py) and
stable-baselines3's A2C, PPO and DQN (the RL Zoo's tuned hyper-parameters) are trained over several seeds, each
judged by greedy episodes from the same starts: learning curves and the environment steps each needs to reach
CartPole's "solved" mean return of 475. The variance of REINFORCE's gradient estimate is measured with and
without the baseline (and with actor-critic's one-step advantage) on the same sampled episodes.

Usage:
    hfrepro rl-basics                                   # recipes/configs/rl_basics/default.yaml (~2.5 CPU-min)
    hfrepro rl-basics --budget full                     # enough steps for every algorithm to solve CartPole
    hfrepro rl-basics --algorithms ppo dqn --cartpole_seeds 5 --output_dir runs/rl-ppo-dqn
    hfrepro rl-basics --algorithms reinforce reinforce_baseline --reinforce_seeds 20 --output_dir runs/rl-pg
    hfrepro rl-basics --frozenlake_map 8x8 --tabular_episodes 20000 --output_dir runs/rl-8x8
    python recipes/rl_basics.py                         # the same code
The stable-baselines3 hyper-parameters (`a2c:`, `ppo:`, `dqn:`, `reinforce:`) are set in the budget's YAML.
"""

from dataclasses import dataclass, field

from hfrepro import runtime
from hfrepro.cards import write_model_card
from hfrepro.config import OutputArguments, RunArguments, parse_args, resolved
from hfrepro.errors import UserError, run_main
from hfrepro.fsutil import atomic_write_json
from hfrepro.hub import hub_request, push_folder
from hfrepro.rlbasics import evaluation, jobs, reinforce, results, sb3, tabular
from hfrepro.rlbasics.jobs import Job

TABULAR = ("q_learning", "sarsa", "greedy")  # greedy: Q-learning with epsilon = 0 (exploitation only)
CARTPOLE = ("reinforce", "reinforce_baseline", "a2c", "ppo", "dqn")


@dataclass
class ScriptArguments:
    # FrozenLake: tabular learning
    frozenlake_map: str = field(default="4x4", metadata={"help": "FrozenLake map: 4x4 or 8x8"})
    slippery: bool = field(default=True, metadata={"help": "slippery ice (an action goes astray 2 times in 3)"})
    tabular_learners: list[str] = field(default_factory=lambda: list(TABULAR),
                                        metadata={"help": f"among {', '.join(TABULAR)}"})
    tabular_episodes: int = field(default=3000, metadata={"help": "training episodes per learner and seed"})
    tabular_seeds: int = field(default=3, metadata={"help": "training seeds per tabular learner"})
    alpha: float = field(default=0.1, metadata={"help": "step size of the Q-learning / SARSA update"})
    gamma: float = field(default=0.99, metadata={"help": "discount of the tabular learners and value iteration"})
    epsilon_start: float = field(default=1.0, metadata={"help": "exploration at the first episode"})
    epsilon_end: float = field(default=0.05, metadata={"help": "exploration after the decay"})
    epsilon_decay: float = field(default=0.5, metadata={"help": "fraction of the episodes epsilon falls over"})
    frozenlake_eval_episodes: int = field(default=1000, metadata={"help": "greedy test episodes per policy"})
    # CartPole: policy gradient, actor-critic, DQN
    algorithms: list[str] = field(default_factory=lambda: list(CARTPOLE),
                                  metadata={"help": f"among {', '.join(CARTPOLE)}"})
    cartpole_seeds: int = field(default=3, metadata={"help": "training seeds per stable-baselines3 algorithm"})
    reinforce_seeds: int = field(default=6, metadata={"help": "training seeds per REINFORCE variant (cheap: the "
                                                              "variance claim's t interval is over them)"})
    reinforce_steps: int = field(default=40000, metadata={"help": "environment steps for each REINFORCE run"})
    a2c_steps: int = field(default=25000, metadata={"help": "environment steps for each A2C run"})
    ppo_steps: int = field(default=25000, metadata={"help": "environment steps for each PPO run"})
    dqn_steps: int = field(default=10000, metadata={"help": "environment steps for each DQN run"})
    eval_every: int = field(default=2500, metadata={"help": "environment steps between greedy evaluations"})
    eval_episodes: int = field(default=5, metadata={"help": "greedy episodes per evaluation (same starts for all)"})
    variance_snapshots: int = field(default=3, metadata={"help": "points of training where the variance of "
                                                                 "REINFORCE's gradient is measured"})
    variance_episodes: int = field(default=32, metadata={"help": "episodes per variance measurement"})
    reinforce: dict = field(default_factory=lambda: {"episodes_per_update": 8, "learning_rate": 0.01, "gamma": 0.99,
                                                     "hidden": 64},
                            metadata={"help": "REINFORCE's settings (YAML)"})
    a2c: dict = field(default_factory=dict, metadata={"help": "stable-baselines3 A2C arguments (YAML)"})
    ppo: dict = field(default_factory=dict, metadata={"help": "stable-baselines3 PPO arguments (YAML)"})
    dqn: dict = field(default_factory=dict, metadata={"help": "stable-baselines3 DQN arguments (YAML)"})


def main(script_args: ScriptArguments, output_args: OutputArguments, run_args: RunArguments) -> dict:
    config = resolved(script_args, output_args, run_args)
    check(script_args)                                                   # bad input fails before anything runs
    if run_args.precision != "fp32":
        raise UserError(f"--precision {run_args.precision}: this recipe runs in fp32 only", where="--precision",
                        fix="leave --precision out: stable-baselines3's rollout buffers cannot hold bf16 values, and "
                            "networks this small gain nothing from it")
    push = hub_request(output_args, default_name="hfrepro-rl-basics-ppo")
    threads = runtime.setup(seed=output_args.seed, threads=run_args.threads, precision=run_args.precision)
    run = runtime.Run.begin(output_args.output_dir, config, overwrite=run_args.overwrite,
                            resume_from_checkpoint=output_args.resume_from_checkpoint, wait=run_args.wait)
    if run.finished:
        print(f"already trained with this config: {run.path}/metrics.json")
        return run.metrics()
    if not run.is_main:
        return {}  # independent runs side by side, one per core: not a data-parallel job
    cpu0 = jobs.cpu_seconds()
    a, seed = script_args, output_args.seed

    # FrozenLake, model-based: value iteration plans with the lake's transition model; the random policy to beat.
    lake = dict(map_name=a.frozenlake_map, slippery=a.slippery)
    optimal_q = tabular.value_iteration(**lake, gamma=a.gamma)
    eval_start = evaluation.eval_seed(seed)
    reference = {"optimal": tabular.evaluate(tabular.greedy(optimal_q), a.frozenlake_eval_episodes, eval_start, **lake),
                 "random": tabular.evaluate(tabular.random_policy(seed), a.frozenlake_eval_episodes, eval_start,
                                            **lake)}

    # The agents, trained side by side: (learner, seed) runs on FrozenLake and (algorithm, seed) runs on CartPole.
    planned = frozenlake_jobs(a, seed, run.path) + cartpole_jobs(a, seed, run.path)
    done = jobs.run_all(planned, run.path / "jobs", processes=threads)
    lake_runs = [r for j, r in zip(planned, done) if j.kind == "tabular"]
    pole_runs = [r for j, r in zip(planned, done) if j.kind != "tabular"]

    # Results: tables, curves, the variance of the policy gradient; a card for every saved model.
    frozen = results.summarize_frozenlake(lake_runs, reference, optimal_q, lake)
    pole = results.summarize_cartpole(pole_runs, evaluation.solved_at())
    results.write_raw(run.path, lake_runs, pole_runs, reference)
    results.frozenlake_figure(lake_runs, frozen, run.path / "frozenlake.png")
    results.cartpole_figure(pole_runs, pole, run.path / "cartpole.png")
    results.variance_figure(pole, run.path / "gradient_variance.png")
    metrics = {"frozenlake": frozen, "cartpole": pole,
               "vocabulary": results.vocabulary(a.frozenlake_map, a.slippery, (a.epsilon_start, a.epsilon_end)),
               "processes": threads,
               "cpu_seconds": round(jobs.cpu_seconds() - cpu0, 1)}
    metrics["results_md"] = results.markdown(metrics, rel=lambda p: p)
    (run.path / "RESULTS.md").write_text(metrics["results_md"], encoding="utf-8")
    write_cards(run.path, {j.algo: results.saved_model_eval(j, r) for j, r in zip(planned, done) if j.save_to},
                config)
    metrics = run.finish(metrics)
    print(results.summary_text(metrics))
    print(f"-> {run.path}/RESULTS.md")
    if push and (run.path / "ppo").is_dir():
        print(f"pushed to {push.repo_id}: {push_folder(run.path / 'ppo', push)}")
    return metrics


def training_seeds(seed: int, n: int) -> list[int]:
    """`--seed s` trains seeds s*n .. s*n + n-1: the runs of --seed 0, 1, 2 never share a training seed."""
    return [seed * n + k for k in range(n)]


def frozenlake_jobs(a: ScriptArguments, seed: int, out) -> list[Job]:
    planned = []
    for name in a.tabular_learners:
        explore = name != "greedy"
        learner = {"method": "sarsa" if name == "sarsa" else "q_learning", "episodes": a.tabular_episodes,
                   "alpha": a.alpha, "gamma": a.gamma, "epsilon_start": a.epsilon_start if explore else 0.0,
                   "epsilon_end": a.epsilon_end if explore else 0.0, "epsilon_decay": a.epsilon_decay}
        settings = {"learner": learner, "map_name": a.frozenlake_map, "slippery": a.slippery,
                    "eval_episodes": a.frozenlake_eval_episodes, "eval_seed": evaluation.eval_seed(seed),
                    "episodes": a.tabular_episodes}
        for k, s in enumerate(training_seeds(seed, a.tabular_seeds)):
            planned.append(Job("tabular", name, s, settings, str(out / name) if k == 0 else None))
    return planned


def cartpole_jobs(a: ScriptArguments, seed: int, out) -> list[Job]:
    planned = []
    common = {"eval_every": a.eval_every, "eval_episodes": a.eval_episodes, "eval_seed": evaluation.eval_seed(seed)}
    for name in a.algorithms:
        if name in jobs.OWN:
            settings = {**common, "steps": a.reinforce_steps, "hyper": a.reinforce,
                        "variance_snapshots": a.variance_snapshots, "variance_episodes": a.variance_episodes}
            kind, n = "reinforce", a.reinforce_seeds
        else:
            settings = {**common, "steps": getattr(a, f"{name}_steps"), "hyper": getattr(a, name)}
            kind, n = "sb3", a.cartpole_seeds
        for k, s in enumerate(training_seeds(seed, n)):
            planned.append(Job(kind, name, s, settings, str(out / name) if k == 0 else None))
    return planned


def check(a: ScriptArguments) -> None:
    """Every argument a user can get wrong, checked before anything trains."""
    where = "recipes/rl_basics.py arguments"
    for given, known, flag in ((a.tabular_learners, TABULAR, "--tabular_learners"),
                               (a.algorithms, CARTPOLE, "--algorithms")):
        bad = [x for x in given if x not in known]
        if bad or len(set(given)) != len(given):
            raise UserError(f"{flag}: unknown or repeated {', '.join(bad) or 'names'}", where=where,
                            fix=f"choose among {', '.join(known)}, each once")
    if a.frozenlake_map not in ("4x4", "8x8"):
        raise UserError(f"--frozenlake_map {a.frozenlake_map!r} is not a FrozenLake map", where=where,
                        fix="use 4x4 or 8x8")
    counts = {"--tabular_episodes": a.tabular_episodes, "--tabular_seeds": a.tabular_seeds,
              "--frozenlake_eval_episodes": a.frozenlake_eval_episodes, "--cartpole_seeds": a.cartpole_seeds,
              "--reinforce_seeds": a.reinforce_seeds,
              "--eval_every": a.eval_every, "--eval_episodes": a.eval_episodes,
              "--variance_episodes": a.variance_episodes, "--variance_snapshots": a.variance_snapshots,
              **{f"--{n}_steps": getattr(a, f"{n}_steps") for n in ("reinforce", "a2c", "ppo", "dqn")}}
    for flag, n in counts.items():
        if n < 1 or (flag == "--variance_episodes" and n < 2):
            raise UserError(f"{flag} must be at least {2 if flag == '--variance_episodes' else 1}, not {n}",
                            where=where, fix=f"give {flag} a positive number")
    if not 0 < a.alpha <= 1 or not 0 <= a.gamma <= 1:
        raise UserError(f"alpha {a.alpha} / gamma {a.gamma} out of range", where=where,
                        fix="use 0 < alpha <= 1 and 0 <= gamma <= 1")
    reinforce.check_settings(a.reinforce, where)
    for name in (n for n in a.algorithms if n in sb3.ALGORITHMS):
        sb3.check_hyperparameters(name, getattr(a, name), where=f"{where}: {name}")


def write_cards(folder, evals: dict, config: dict) -> None:
    """Each saved agent's eval.json (its held-out evaluation) and card, in the shape of the Hub's RL cards:
    pipeline_tag reinforcement-learning, the gymnasium environment id as the model-index dataset, mean_reward and
    std_reward of the greedy policy. The weights are safetensors that hfrepro loads (`hfrepro.rlbasics.saved`),
    so library_name is hfrepro, also for the stable-baselines3 agents (their .zip format pickles)."""
    for name, ev in evals.items():
        atomic_write_json(folder / name / "eval.json", ev)
        write_model_card(
            folder / name, title=f"{results.LABELS[name]} on {ev['env_id']} (hfrepro rl-basics)", license="apache-2.0",
            library_name="hfrepro", pipeline_tag="reinforcement-learning",
            tags=["reinforcement-learning", "deep-reinforcement-learning" if name in CARTPOLE else "q-learning",
                  "gymnasium", ev["env_id"], *(["stable-baselines3"] if name in sb3.ALGORITHMS else [])],
            metrics=results.card_metrics(ev), eval_metrics=["mean_reward", "std_reward"], eval_dataset=ev["env_id"],
            config=config, command="hfrepro rl-basics --config ../config.yaml   # the run folder's config",
            how_to_load=results.how_to_load(name), description=results.card_description(name, ev),
            usage="Teaching: the RL chapter of hfrepro (agent, policy, value function, exploration).",
            limits="A small agent for a classic control toy task; the first training seed's model of the run.")


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, OutputArguments, RunArguments), recipe="rl_basics", argv=argv))


if __name__ == "__main__":
    run_main(cli)
