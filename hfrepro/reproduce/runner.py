"""Walk the stages: each in its own Python process (memory is returned between stages, and the runner measures
each stage's wall time and peak memory), each writing `<out>/<stage>/result.json`.

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
import signal
import subprocess
import sys
import time
from pathlib import Path

from hfrepro import runtime
from hfrepro.claims import Decision, StageContext, StageResult, verdict
from hfrepro.config import BUDGET_NAMES
from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_write_json, read_json
from hfrepro.paths import CONFIGS_DIR, PACKAGE_DIR
from hfrepro.reproduce.plan import STAGES, Stage, available, recipe_cli
from hfrepro.reproduce.report import NOT_YET, write_report


def stage_key(stage: Stage, budget: str, seed: int) -> dict:
    """What a finished stage's result depends on: it is reused only when all of it is the same. The sources are
    the stage module, its recipes and their budget configs, the stage's own evaluation settings, and the stage's
    library package."""
    mod = stage.load()
    files = [Path(mod.__file__)] + [f for r in getattr(mod, "RUNS", []) for f in r.sources(budget)]
    own = CONFIGS_DIR / "reproduce" / stage.name / f"{budget}.yaml"
    files += [own] if own.is_file() else []
    files += sorted((PACKAGE_DIR / stage.name.replace("_", "")).rglob("*.py"))  # rl_basics: hfrepro/rlbasics
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return {"stage": stage.name, "budget": budget, "seed": seed, "sources": h.hexdigest()[:16]}


def run_stage_inprocess(stage: Stage, out: Path, budget: str, seed: int, threads: int,
                        overwrite: bool = False) -> dict:
    """Run the stage's recipes, then its section. `overwrite`: the stage's sources changed since its folder was
    written (or --force): its recipe runs start afresh instead of refusing a folder with another config."""
    runtime.setup(seed=seed, threads=threads)
    sdir = out / stage.name
    sdir.mkdir(parents=True, exist_ok=True)
    mod = stage.load()
    ctx = StageContext(dir=sdir, root=out, budget=budget, seed=seed, threads=threads)
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


def _run_stage_subprocess(stage: Stage, out: Path, budget: str, seed: int, threads: int,
                          overwrite: bool) -> tuple[dict, float, int]:
    """Returns (result, wall seconds, peak RSS bytes of the stage's process tree)."""
    cmd = [sys.executable, "-m", "hfrepro.reproduce", "--stage", stage.name, "--out", str(out),
           "--budget", budget, "--seed", str(seed), "--threads", str(threads)] + (["--overwrite"] if overwrite else [])
    t0 = time.time()
    proc = subprocess.Popen(cmd, start_new_session=True)  # its own process group: signals reach it through us
    status, rusage, interrupted = _wait_forwarding_signals(proc)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - t0
    peak = rusage.ru_maxrss * 1024  # Linux: kilobytes (the largest single process of the tree)
    f = out / stage.name / "result.json"
    key = stage_key(stage, budget, seed)
    if interrupted:  # nothing reports "ok" after the user stopped the run; the next run resumes this stage
        atomic_write_json(f, {"status": "interrupted", "markdown": "**Stage interrupted.**", "claims": {},
                              "metrics": {}, "key": key})
        raise KeyboardInterrupt
    if f.is_file() and read_json(f).get("key") == key and proc.returncode == 0:
        result = read_json(f)
    else:
        result = {"status": "crashed", "markdown": f"**Stage crashed** (exit code {proc.returncode}); see the "
                  "output above.", "claims": {}, "metrics": {}, "key": key}
    result["wall_seconds"], result["peak_rss_bytes"] = round(wall, 1), peak
    atomic_write_json(f, result)
    return result, wall, peak


def _wait_forwarding_signals(proc) -> tuple[int, object, bool]:
    """Wait for the stage's process; SIGINT/SIGTERM sent to the runner go to the stage's whole process group,
    and the runner waits for it to stop before it says anything."""
    got: list[int] = []

    def forward(sig, _frame):
        got.append(sig)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _, status, rusage = os.wait4(proc.pid, 0)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return status, rusage, bool(got)


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


def reproduce(stages: list[str], budget: str, out: Path, seed: int = 0, threads: int | None = None,
              force: bool = False) -> Path:
    if budget not in BUDGET_NAMES:
        raise UserError(f"unknown budget {budget!r}", fix=f"use one of: {', '.join(BUDGET_NAMES)}")
    have = [s.name for s in available()]
    unknown = [s for s in stages if s not in have]
    if unknown or not stages:
        raise UserError(f"unknown stage(s): {', '.join(unknown) or '(none given)'}", fix=f"stages: {', '.join(have)}")
    threads = threads or int(os.environ.get("HFREPRO_THREADS", 0)) or (os.cpu_count() or 1)
    runtime.check_writable_folder(out)
    lock = runtime.lock_folder(out)
    try:
        return _walk(stages, budget, out, seed, threads, force)
    finally:
        runtime.unlock_folder(lock)


def _walk(stages: list[str], budget: str, out: Path, seed: int, threads: int, force: bool) -> Path:
    chosen = [s for s in available() if s.name in stages]
    results: dict[str, dict] = {}
    ran: set[str] = set()  # the stages this walk ran (the others were finished before)
    t_start = time.time()
    for k, stage in enumerate(chosen, 1):
        elapsed = time.time() - t_start
        left = sum(s.expected_s.get(budget, 60) for s in chosen[k - 1:])
        head = (f"[reproduce] stage {k}/{len(chosen)}: {stage.name}  (elapsed {_mmss(elapsed)}, "
                f"estimate {_mmss(left)} left)")
        prev = None if force else _previous(stage, out, budget, seed)
        if prev:
            print(head + " -- already done with this config, skipped", flush=True)
            results[stage.name] = prev
            continue
        print(head, flush=True)
        result, wall, peak = _run_stage_subprocess(stage, out, budget, seed, threads,
                                                   overwrite=force or _stale(stage, out, budget, seed))
        ran.add(stage.name)
        print(f"[reproduce] {stage.name}: {result['status']} in {_mmss(wall)}, peak memory {peak / 2**30:.2f} GiB",
              flush=True)
        results[stage.name] = result
        # a partial REPORT.md after every stage: an interrupted walk leaves the stages it finished readable
        write_report(out, budget, seed, threads, _with_earlier(results, out, budget, seed, pending=chosen))
    results = _with_earlier(results, out, budget, seed)
    report = write_report(out, budget, seed, threads, results)
    bench = {s.name: {"status": results[s.name].get("status"), "ran_in_this_walk": s.name in ran,
                      "wall_seconds": results[s.name].get("wall_seconds"),
                      "peak_rss_bytes": results[s.name].get("peak_rss_bytes")} for s in STAGES if s.name in results}
    atomic_write_json(out / "timings.json", {"budget": budget, "seed": seed, "threads": threads, "stages": bench,
                                             "total_seconds": round(time.time() - t_start, 1)})
    print(f"[reproduce] done in {_mmss(time.time() - t_start)}: {report}")
    return report


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
