"""Walk the stages: each in its own Python process (memory is returned between stages, and the runner measures
each stage's wall time and peak memory), each writing `<out>/<stage>/result.json`. One at a time (`--jobs 1`) in
road order, or side by side (`--jobs 2`: two stages at once, each with half the threads and its output in
`<out>/<stage>/stage.log`, in the order that, walked on paper with the stages' expected times and peaks,
finishes first: `planned_priorities`). Either way a stage starts
only after the stages whose folders it reads (`Stage.after`), and side by side only while the running stages'
expected peaks (`Stage.expected_gib`) add up to at most `memory_gib`.

Inside a stage's process the recipes of its plan run one after another, in-process, exactly as `hfrepro
<recipe> --config recipes/configs/<recipe>/<budget>.yaml ...` would run them; then the stage's `section`
reads their run folders and decides its claims. A re-run skips a stage whose result was produced with the
same budget, seed and sources (the stage module, its recipes and their budget configs), and inside a stage
every finished recipe run is a no-op of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hfrepro import runtime
from hfrepro.claims import Decision, StageContext, StageResult, verdict
from hfrepro.config import BUDGET_NAMES
from hfrepro.errors import EXIT_DISK_FULL, UserError
from hfrepro.fsutil import atomic_write_json, read_json
from hfrepro.paths import CONFIGS_DIR, PACKAGE_DIR
from hfrepro.reproduce.plan import STAGES, Stage, available, recipe_cli
from hfrepro.reproduce.report import NOT_YET, write_report


def stage_key(stage: Stage, budget: str, seed: int) -> dict:
    """What a finished stage's result depends on: it is reused only when all of it is the same. The sources are
    the stage module, its recipes and their budget configs, the stage's own evaluation settings, the stage's
    library package, and the keys of the stages whose folders it reads (`Stage.after`): a stage that draws another
    stage's model is stale when that model is."""
    mod = stage.load()
    files = [Path(mod.__file__)] + [f for r in getattr(mod, "RUNS", []) for f in r.sources(budget)]
    own = CONFIGS_DIR / "reproduce" / stage.name / f"{budget}.yaml"
    files += [own] if own.is_file() else []
    files += sorted((PACKAGE_DIR / stage.name.replace("_", "")).rglob("*.py"))  # rl_basics: hfrepro/rlbasics
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    for read in (s for s in STAGES if s.name in stage.after and s.exists()):
        h.update(repr(sorted(stage_key(read, budget, seed).items())).encode())
    key = {"stage": stage.name, "budget": budget, "seed": seed, "sources": h.hexdigest()[:16]}
    precision = stage.precision(runtime.main_job_precision())
    return key if precision == "fp32" else {**key, "precision": precision}  # fp32 runs keep their keys


def run_stage_inprocess(stage: Stage, out: Path, budget: str, seed: int, threads: int,
                        overwrite: bool = False) -> dict:
    """Run the stage's recipes, then its section. `overwrite`: the stage's sources changed since its folder was
    written (or --force): its recipe runs start afresh instead of refusing a folder with another config."""
    precision = stage.precision(runtime.main_job_precision())
    runtime.setup(seed=seed, threads=threads, precision=precision)
    sdir = out / stage.name
    sdir.mkdir(parents=True, exist_ok=True)
    mod = stage.load()
    ctx = StageContext(dir=sdir, root=out, budget=budget, seed=seed, threads=threads, precision=precision)
    t0 = time.time()
    try:
        for r in mod.RUNS:
            argv = r.argv(ctx) + (["--overwrite"] if overwrite else [])
            print(f"[{stage.name}] hfrepro {r.recipe} " + " ".join(argv), flush=True)
            recipe_cli(r.recipe)(argv)
        res: StageResult = mod.section(ctx)
        result = {"status": "ok", "markdown": res.markdown, "claims": {k: _claim_record(v) for k, v in
                                                                       res.claims.items()}, "metrics": res.metrics}
    except UserError as e:
        print(e.render(), file=sys.stderr, flush=True)
        result = {"status": "failed", "markdown": f"**Stage failed:** {e.what}" + (f" Fix: {e.fix}" if e.fix else ""),
                  "claims": {}, "metrics": {}, "error": e.render()}
    result["seconds"] = round(time.time() - t0, 1)
    result["key"] = stage_key(stage, budget, seed)
    atomic_write_json(sdir / "result.json", result)
    return result


def _claim_record(v) -> dict:
    """How a decided claim is kept in result.json: a protocol Decision, or a plain rule's (evidence, held)."""
    if isinstance(v, Decision):
        return {"verdict": v.verdict, "evidence": v.summary(), "decision": v.to_dict()}
    evidence, held = v
    return {"verdict": verdict(held), "evidence": evidence, "held": held}


@dataclass
class _Launch:
    """A stage's process, started by the walk."""
    stage: Stage
    proc: subprocess.Popen
    t0: float
    log: Path | None     # where its output goes when stages run side by side (None: the terminal)


def _start_stage(stage: Stage, out: Path, budget: str, seed: int, threads: int, overwrite: bool,
                 log: Path | None) -> subprocess.Popen:
    """Start the stage's process (its own process group: signals reach it through the runner). `log`: write its
    output there instead of the terminal (two stages at once would interleave their lines). Every thread pool of
    the process is held to `threads` (runtime.thread_env)."""
    cmd = [sys.executable, "-m", "hfrepro.reproduce", "--stage", stage.name, "--out", str(out),
           "--budget", budget, "--seed", str(seed), "--threads", str(threads)] + (["--overwrite"] if overwrite else [])
    env = runtime.thread_env(threads)
    if log is None:
        return subprocess.Popen(cmd, start_new_session=True, env=env)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, start_new_session=True, stdout=f, stderr=subprocess.STDOUT, env=env)


def _collect(launch: _Launch, out: Path, budget: str, seed: int, status: int, rusage,
             interrupted: bool) -> tuple[dict, float, int]:
    """The finished stage's result (wall seconds and peak RSS bytes of its process tree added)."""
    stage, proc = launch.stage, launch.proc
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - launch.t0
    peak = rusage.ru_maxrss * 1024  # Linux: kilobytes (the largest single process of the tree)
    f = out / stage.name / "result.json"
    key = stage_key(stage, budget, seed)
    if interrupted:  # nothing reports "ok" after the user stopped the run; the next run resumes this stage
        result = {"status": "interrupted", "markdown": "**Stage interrupted.**", "claims": {}, "metrics": {},
                  "key": key}
    elif f.is_file() and read_json(f).get("key") == key and proc.returncode == 0:
        result = read_json(f)
    else:
        where = f" (its output: {launch.log})" if launch.log else " (see the output above)"
        what = (f"**Stage stopped: the disk is full**{where}. Free space and run the same command again: finished "
                "stages and steps are kept" if proc.returncode == EXIT_DISK_FULL else
                f"**Stage crashed** (exit code {proc.returncode}){where}")
        result = {"status": "crashed", "markdown": what + ".", "claims": {}, "metrics": {}, "key": key}
    result["wall_seconds"], result["peak_rss_bytes"] = round(wall, 1), peak
    atomic_write_json(f, result)
    return result, wall, peak


class _Forward:
    """While the walk runs: SIGINT/SIGTERM sent to the runner go to every running stage's process group, and the
    walk starts nothing more; it waits for the running stages to stop before it says anything."""

    def __init__(self, running: dict):
        self.running, self.got = running, []

    def __call__(self, sig, _frame):
        self.got.append(sig)
        for launch in list(self.running.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(launch.proc.pid, sig)

    def __enter__(self):
        self.old = {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


def _previous(stage: Stage, out: Path, budget: str, seed: int) -> dict | None:
    f = out / stage.name / "result.json"
    prev = read_json(f) if f.is_file() else None
    if prev and prev.get("key") == stage_key(stage, budget, seed) and prev.get("status") == "ok":
        return prev
    return None


def _stale(stage: Stage, out: Path, budget: str, seed: int) -> bool:
    """The stage's folder holds a result made from other sources, budget or seed: start its runs afresh.
    (No result at all means a first run, or one interrupted: its recipe runs resume.)"""
    f = out / stage.name / "result.json"
    return f.is_file() and read_json(f).get("key") != stage_key(stage, budget, seed)


MEMORY_CAP_GIB = 5.5   # stages side by side start only while their expected peaks sum to this (the 6 GB target)


def default_jobs(budget: str, cpus: int | None = None) -> int:
    """Two stages side by side on a CPU budget (tiny, default) with 2 cores or more: most of these models gain
    less than 2x from a second thread, so two 1-thread stages at once finish sooner (docs/DEVELOPING.md, "Two
    stages side by side"); one at a time on the GPU budget (`full`: the stages would share one accelerator)."""
    return 2 if budget != "full" and (cpus or os.cpu_count() or 1) >= 2 else 1


def reproduce(stages: list[str], budget: str, out: Path, seed: int = 0, threads: int | None = None,
              force: bool = False, jobs: int | None = None, memory_gib: float = MEMORY_CAP_GIB,
              precision: str = "auto") -> Path:
    """Walk the chosen stages. `jobs` > 1: that many stages at once, each with threads // jobs torch threads,
    each stage's output in `<out>/<stage>/stage.log`; a stage starts once the stages it reads (`Stage.after`)
    are finished and while the expected peak memory of the running stages stays under `memory_gib`.
    `jobs` None: `default_jobs(budget)`. `precision`: bf16 runs the stages that gain from it (`Stage.cpu_bf16`) in
    mixed precision on the CPU (runtime.set_cpu_precision); it is then part of their keys, so a bf16 walk does not
    reuse their fp32 results, nor the other way round (the fp32 stages are shared). auto: bf16 on a CPU with AMX,
    fp32 elsewhere (runtime.resolve_precision)."""
    if budget not in BUDGET_NAMES:
        raise UserError(f"unknown budget {budget!r}", fix=f"use one of: {', '.join(BUDGET_NAMES)}")
    have = [s.name for s in available()]
    unknown = [s for s in stages if s not in have]
    if unknown or not stages:
        raise UserError(f"unknown stage(s): {', '.join(unknown) or '(none given)'}", fix=f"stages: {', '.join(have)}")
    jobs = default_jobs(budget) if jobs is None else jobs
    if jobs < 1:
        raise UserError(f"--jobs {jobs}: at least one stage must run", fix="use --jobs 1 (one stage at a time) or more")
    if not memory_gib > 0:  # also NaN
        raise UserError(f"--memory_gib {memory_gib}: the memory the stages side by side may expect must be positive",
                        fix=f"use a number of GiB above 0 (default {MEMORY_CAP_GIB})")
    asked, precision = precision, runtime.resolve_precision(precision)
    threads = threads or int(os.environ.get("HFREPRO_THREADS", 0)) or (os.cpu_count() or 1)
    runtime.check_writable_folder(out)
    lock = runtime.lock_folder(out)
    before = os.environ.get(runtime.PRECISION_ENV)
    os.environ[runtime.PRECISION_ENV] = precision  # the stage processes inherit it; the stages' keys read it
    mixed = [s.name for s in available() if s.name in stages and s.precision(precision) != "fp32"]
    if mixed:
        print(f"[reproduce] precision: bf16 mixed precision on the CPU in {', '.join(mixed)}, the others fp32"
              + (" (auto: this CPU has AMX; --precision fp32 turns it off)" if asked == "auto" else ""), flush=True)
    try:
        return _walk(stages, budget, out, seed, threads, force, jobs, memory_gib)
    finally:
        runtime.unlock_folder(lock)
        if before is None:
            os.environ.pop(runtime.PRECISION_ENV, None)
        else:
            os.environ[runtime.PRECISION_ENV] = before


def priorities(chosen: list[Stage], budget: str) -> dict[str, float]:
    """Each stage's expected seconds plus the longest chain of chosen stages that wait for it (its critical
    path): side by side, the walk starts the ready stage with the longest path first."""
    waiting = {s.name: [t for t in chosen if s.name in t.after] for s in chosen}
    memo: dict[str, float] = {}
    precision = runtime.main_job_precision()

    def path(s: Stage) -> float:
        if s.name not in memo:
            memo[s.name] = s.seconds(budget, precision) + max((path(t) for t in waiting[s.name]), default=0.0)
        return memo[s.name]

    return {s.name: path(s) for s in chosen}


ORDERS_TRIED = 2000  # orders of the stages the walk tries on paper before it starts (a few tenths of a second)


def planned_priorities(todo: list[Stage], chosen: list[Stage], budget: str, jobs: int,
                       memory_gib: float) -> dict[str, float]:
    """The order to start the stages in, side by side: the critical-path order, and `ORDERS_TRIED` shuffles of it
    (seeded, so the same plan every time), each walked on paper with the stages' expected times and peaks
    (`simulate`); the one that finishes first wins (ties: the earlier). The critical path alone does not see
    memory: stages too big to run beside each other (rlhf, finetune, chatgpt at bf16) must follow one another,
    and where the path leaves one of them for last, it runs alone at the end while a core idles."""
    prio = priorities(chosen, budget)
    order = sorted((s.name for s in todo), key=lambda n: -prio[n])
    if jobs < 2 or len(order) < 3:
        return prio
    rng = random.Random(0)
    best, best_s = order, simulate(order, todo, chosen, budget, jobs, memory_gib)
    for _ in range(ORDERS_TRIED):
        trial = rng.sample(order, len(order))
        if (s := simulate(trial, todo, chosen, budget, jobs, memory_gib)) < best_s:
            best, best_s = trial, s
    return {n: float(len(best) - i) for i, n in enumerate(best)}


def simulate(order: list[str], todo: list[Stage], chosen: list[Stage], budget: str, jobs: int,
             memory_gib: float) -> float:
    """The seconds a walk would take if every stage took its expected time, starting stages in `order` when
    `next_stage` lets them (a place free, what they read done, memory under the cap)."""
    prio = {n: float(len(order) - i) for i, n in enumerate(order)}
    precision, names = runtime.main_job_precision(), {s.name for s in chosen}
    left, ends, done, now = list(todo), {}, names - {s.name for s in todo}, 0.0  # ends: {stage name: its end}
    by_name = {s.name: s for s in todo}
    while left or ends:
        while stage := next_stage(left, [by_name[n] for n in ends], done, names, jobs, budget, memory_gib, prio):
            left.remove(stage)
            ends[stage.name] = now + stage.seconds(budget, precision)
        if not ends:  # nothing can start: a stage waits for one outside the walk (cannot happen with `after`)
            return float("inf")
        first = min(ends, key=ends.get)
        now = ends.pop(first)
        done.add(first)
    return now


def next_stage(todo: list[Stage], running: list[Stage], done: set[str], chosen: set[str], jobs: int, budget: str,
               memory_gib: float, prio: dict[str, float]) -> Stage | None:
    """The stage to start now, or None: a free place, its `after` stages (those chosen) finished, its expected
    peak memory fitting beside the running stages' (any stage fits when none runs). One at a time: road order;
    side by side: the highest of `prio` first (`planned_priorities`)."""
    if len(running) >= jobs:
        return None
    precision = runtime.main_job_precision()
    used = sum(s.peak_gib(budget, precision) for s in running)
    ready = [s for s in todo if all(d in done or d not in chosen for d in s.after)
             and (not running or used + s.peak_gib(budget, precision) <= memory_gib)]
    if jobs > 1:
        ready.sort(key=lambda s: -prio[s.name])
    return ready[0] if ready else None


def _walk(stages: list[str], budget: str, out: Path, seed: int, threads: int, force: bool, jobs: int,
          memory_gib: float) -> Path:
    chosen = [s for s in available() if s.name in stages]
    results: dict[str, dict] = {}
    t_start = time.time()
    per_stage = max(1, threads // jobs)  # torch threads of each stage
    todo = []
    for k, stage in enumerate(chosen, 1):
        prev = None if force else _previous(stage, out, budget, seed)
        if prev:
            print(_head(f"{k}/{len(chosen)}", stage, t_start) + ") -- already done with this config, skipped",
                  flush=True)
            results[stage.name] = prev
        else:
            todo.append(stage)
    spans = _run_stages(todo, chosen, results, out, budget, seed, per_stage, force, jobs, memory_gib, t_start)
    results = _with_earlier(results, out, budget, seed)
    report = write_report(out, budget, seed, _threads_text(per_stage, jobs), results)
    bench = {s.name: {"status": results[s.name].get("status"), "ran_in_this_walk": s.name in spans,
                      "wall_seconds": results[s.name].get("wall_seconds"),
                      "peak_rss_bytes": results[s.name].get("peak_rss_bytes"),
                      **({"started_s": spans[s.name][0], "ended_s": spans[s.name][1]} if s.name in spans else {})}
             for s in STAGES if s.name in results}
    atomic_write_json(out / "timings.json", {
        "budget": budget, "seed": seed, "threads": per_stage, "jobs": jobs,
        "precision": {s.name: s.precision(runtime.main_job_precision()) for s in chosen}, "stages": bench,
        "peak_side_by_side_bytes": concurrent_peak(spans), "total_seconds": round(time.time() - t_start, 1)})
    print(f"[reproduce] done in {_mmss(time.time() - t_start)}: {report}")
    return report


def concurrent_peak(spans: dict[str, tuple[float, float, int]]) -> int:
    """An upper bound on the memory the walk held at once: the largest sum of the peaks of stages whose runs
    overlapped (each stage's own peak, counted for the whole of its run). One at a time: the largest peak."""
    return max((sum(p for a, b, p in spans.values() if a <= t0 < b) for t0, _, _ in spans.values()), default=0)


def _head(count: str, stage: Stage, t_start: float) -> str:
    """The start of the runner's line for a stage it reaches (left open for what follows)."""
    return f"[reproduce] stage {count}: {stage.name}  (elapsed {_mmss(time.time() - t_start)}"


def _launch(stage: Stage, out: Path, budget: str, seed: int, per_stage: int, force: bool, jobs: int,
            t_start: float, count: str, left: list[Stage]) -> _Launch:
    estimate = sum(s.seconds(budget, runtime.main_job_precision()) for s in left) / jobs
    log = out / stage.name / "stage.log" if jobs > 1 else None
    print(_head(count, stage, t_start) + f", estimate {_mmss(estimate)} left)"
          + (f", its output: {log}" if log else ""), flush=True)
    overwrite = force or _stale(stage, out, budget, seed)
    proc = _start_stage(stage, out, budget, seed, per_stage, overwrite, log)
    return _Launch(stage, proc, time.time(), log)


def _said_done(launch: _Launch, result: dict, wall: float, peak: int) -> None:
    """The runner's line for a finished stage; side by side, a crashed stage's last output lines too."""
    print(f"[reproduce] {launch.stage.name}: {result['status']} in {_mmss(wall)}, peak memory "
          f"{peak / 2**30:.2f} GiB", flush=True)
    if launch.log and result["status"] in ("crashed", "failed") and launch.log.is_file():
        tail = launch.log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        print("\n".join([f"[reproduce] the end of {launch.log}:", *tail]), file=sys.stderr, flush=True)


def _threads_text(per_stage: int, jobs: int) -> str:
    return str(per_stage) if jobs == 1 else f"{jobs} stages side by side, {per_stage}"


def _run_stages(todo: list[Stage], chosen: list[Stage], results: dict, out: Path, budget: str, seed: int,
                per_stage: int, force: bool, jobs: int, memory_gib: float, t_start: float) -> dict:
    """Start the stages as places free up, collect each as it ends; {stage: (start s, end s, peak bytes)}."""
    names, total = {s.name for s in chosen}, len(chosen)
    prio = planned_priorities(todo, chosen, budget, jobs, memory_gib)
    running: dict[int, _Launch] = {}
    spans: dict[str, tuple[float, float, int]] = {}
    with _Forward(running) as fwd:
        try:
            while todo or running:
                while not fwd.got and (stage := next_stage(todo, [r.stage for r in running.values()], set(results),
                                                           names, jobs, budget, memory_gib, prio)):
                    todo.remove(stage)
                    left = [stage, *todo, *(r.stage for r in running.values())]
                    launch = _launch(stage, out, budget, seed, per_stage, force, jobs, t_start,
                                     f"{total - len(todo)}/{total}", left)
                    running[launch.proc.pid] = launch
                if not running:
                    break
                pid, status, rusage = os.wait4(-1, 0)
                launch = running.pop(pid, None)
                if launch is None:
                    continue
                result, wall, peak = _collect(launch, out, budget, seed, status, rusage, interrupted=bool(fwd.got))
                spans[launch.stage.name] = (round(launch.t0 - t_start, 1), round(launch.t0 - t_start + wall, 1), peak)
                results[launch.stage.name] = result
                _said_done(launch, result, wall, peak)
                # a partial REPORT.md after every stage: an interrupted walk leaves the stages it finished readable
                # (and once the user has stopped the walk, nothing more is written)
                if not fwd.got:
                    write_report(out, budget, seed, _threads_text(per_stage, jobs),
                                 _with_earlier(results, out, budget, seed, pending=chosen))
        except BaseException:  # the runner itself failed: stop the running stages (they resume next time)
            fwd(signal.SIGTERM, None)
            for launch in running.values():
                launch.proc.wait()
            raise
    if fwd.got:
        raise KeyboardInterrupt
    return spans


def _with_earlier(results: dict[str, dict], out: Path, budget: str, seed: int,
                  pending: list[Stage] | None = None) -> dict[str, dict]:
    """The walk's results, plus `pending` stages (chosen, not reached yet) marked NOT_YET, plus the stages
    finished earlier in this folder with the same key (e.g. `--stages rlhf` after the others), so REPORT.md
    covers every stage the folder holds a current result for."""
    todo = {s.name: dict(NOT_YET) for s in pending or [] if s.name not in results}
    earlier = {s.name: prev for s in available() if s.name not in results and s.name not in todo
               and (prev := _previous(s, out, budget, seed))}
    return {**results, **earlier, **todo}


def _mmss(s: float) -> str:
    s = int(s)
    return f"{s // 60}m{s % 60:02d}s"
