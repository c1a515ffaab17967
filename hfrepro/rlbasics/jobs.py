"""Independent training runs, one (algorithm, seed) each, run side by side: one process per core.

Every run seeds itself and uses one thread, so its numbers do not depend on which process runs it or on how
many run at once. A finished run's result is kept in `<run folder>/jobs/<name>.json`: a run folder that was
interrupted continues with the runs it had not finished (the same config gives the same numbers).
"""

from __future__ import annotations

import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from hfrepro.fsutil import atomic_write_json, read_json
from hfrepro.rlbasics import evaluation, reinforce, saved, sb3, tabular

OWN = saved.OWN  # ours; the others are stable-baselines3's


@dataclass(frozen=True)
class Job:
    kind: str                       # "tabular" | "reinforce" | "sb3"
    algo: str                       # q_learning, sarsa, greedy, reinforce, reinforce_baseline, a2c, ppo, dqn
    seed: int                       # the training seed
    settings: dict = field(default_factory=dict)
    save_to: str | None = None      # a folder for the trained model (the first seed of each algorithm)

    @property
    def name(self) -> str:
        return f"{self.algo}-seed{self.seed}"

    @property
    def cost(self) -> float:
        """A rough CPU cost, to start the longest runs first."""
        per_step = {"dqn": 25.0, "ppo": 4.0, "a2c": 2.0}.get(self.algo, 1.0)
        return self.settings.get("steps", 0) * per_step + self.settings.get("episodes", 0) * 30


def run(job: Job) -> dict:
    """One training run and its evaluation; a JSON-able result."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.process_time()
    try:
        out = {"tabular": _tabular, "reinforce": _reinforce, "sb3": _sb3}[job.kind](job)
    finally:
        torch.set_num_threads(threads)
    return {"algo": job.algo, "seed": job.seed, **out, "cpu_seconds": round(time.process_time() - t0, 2)}


def _tabular(job: Job) -> dict:
    s = job.settings
    settings = tabular.TabularSettings(**s["learner"])
    trained = tabular.train(settings, job.seed, s["map_name"], s["slippery"])
    q = trained["q"]
    success = tabular.evaluate(tabular.greedy(q), s["eval_episodes"], s["eval_seed"], s["map_name"], s["slippery"])
    if job.save_to:
        saved.save_table(q, job.save_to, job.algo, s)
    return {"q": q.round(6).tolist(), "train_success": trained["train_success"].tolist(),
            "eval_success": success.tolist()}


def _evaluator(s: dict):
    def evaluate(act) -> list[float]:
        returns = evaluation.evaluate(act, s["eval_episodes"], s["eval_seed"])
        return [float(np.mean(returns)), float(np.std(returns))]
    return evaluate


def _reinforce(job: Job) -> dict:
    s = job.settings
    settings = reinforce.ReinforceSettings(steps=s["steps"], baseline=job.algo == "reinforce_baseline", **s["hyper"])
    snapshots = s["variance_snapshots"] if settings.baseline else 0
    trained = reinforce.train(settings, job.seed, _evaluator(s), s["eval_every"], snapshots)
    variance = [{"steps": k["steps"], **reinforce.gradient_variance(
        k["policy"], k["critic"], s["variance_episodes"], seed=reinforce.variance_seed(job.seed, i),
        gamma=settings.gamma)} for i, k in enumerate(trained["snapshots"])]
    if job.save_to:
        saved.save_nets(trained["policy"], trained["critic"], job.save_to, job.algo, s["hyper"])
    return {"curve": trained["curve"], "train_returns": trained["train_returns"], "steps": trained["steps"],
            "variance": variance}


def _sb3(job: Job) -> dict:
    s = job.settings
    trained = sb3.train(job.algo, s["hyper"], s["steps"], job.seed, _evaluator(s), s["eval_every"])
    if job.save_to:
        sb3.save(trained["model"], job.save_to, job.algo, s["hyper"])
    return {"curve": trained["curve"], "steps": trained["steps"]}


# --- running them -------------------------------------------------------------------------------------------

def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"


def run_all(jobs: list[Job], folder: str | Path, processes: int = 1, progress: bool = True) -> list[dict]:
    """Every job's result, in the order given. Finished ones are read from `folder/<name>.json`; the others run
    in `processes` processes (1: in this process), longest first."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for job in jobs:
        f = folder / f"{job.name}.json"
        if f.is_file():
            results[job.name] = read_json(f)
    todo = sorted((j for j in jobs if j.name not in results), key=lambda j: -j.cost)
    bar = _bar(len(jobs), len(results), progress)
    if processes <= 1 or len(todo) <= 1:
        for job in todo:
            results[job.name] = _keep(folder, job, run(job), bar)
    else:
        ctx = get_context("spawn")  # a fresh interpreter: no torch thread pool inherited through fork
        with ProcessPoolExecutor(max_workers=min(processes, len(todo)), mp_context=ctx,
                                 initializer=_init_worker) as pool:
            futures = {pool.submit(run, job): job for job in todo}
            for fut in as_completed(futures):
                job = futures[fut]
                results[job.name] = _keep(folder, job, fut.result(), bar)
    bar.close()
    return [results[j.name] for j in jobs]


def _keep(folder: Path, job: Job, result: dict, bar) -> dict:
    atomic_write_json(folder / f"{job.name}.json", result)
    bar.set_postfix_str(f"{job.name} {result['cpu_seconds']:.0f} CPU-s")
    bar.update(1)
    return result


def _bar(total: int, done: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc="rl-basics runs", unit="run", disable=not enabled)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the worker processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
