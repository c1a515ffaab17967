"""`hfrepro reproduce`: walk the road from word2vec to RLHF and write REPORT.md with a claims table.

Each stage runs in its own Python process (memory is returned between stages; the runner measures each
stage's wall time and peak memory) and writes `<out>/<stage>/result.json`. A re-run skips stages whose
result was produced with the same budget, seed and stage version.

A stage is a function `run(ctx: StageContext) -> StageResult` in the module named in STAGES. It writes
its files under `ctx.dir`, returns a Markdown section and a verdict for each claim it measured. A claim no
stage measured is reported as NOT RUN: the report never states a verdict a run did not produce.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_write_json, atomic_write_text, read_json

BUDGETS = ("tiny", "default", "full")
REPRODUCED, NOT_REPRODUCED, NOT_RUN = "REPRODUCED", "NOT REPRODUCED", "NOT RUN"


@dataclass(frozen=True)
class Claim:
    id: str
    stage: str
    text: str


CLAIMS = [
    Claim("w2v-skipgram-semantic", "embeddings",
          "Skip-gram beats CBOW on semantic analogies (Mikolov et al. 2013: 55% vs 24%)"),
    Claim("w2v-cbow-faster", "embeddings", "CBOW trains faster than skip-gram"),
    Claim("w2v-king-queen", "embeddings", "king − man + woman lands near queen"),
    Claim("lm-ppl-ladder", "lm", "Perplexity falls from unigram to bigram to Kneser-Ney to LSTM to GPT"),
    Claim("lm-temperature-entropy", "lm", "Temperature raises the entropy of the next-token distribution"),
    Claim("lm-arch-params", "lm", "GPT-1/2/3 parameter counts follow from their layer and width numbers"),
    Claim("s2s-attention-long", "seq2seq",
          "Attention holds BLEU up on long sentences where plain seq2seq falls (Bahdanau et al. 2014)"),
    Claim("fewshot-beats-zeroshot", "fewshot", "Few-shot beats zero-shot (GPT-3)"),
    Claim("lora-near-full", "finetune", "LoRA comes close to full fine-tuning with under 1% trainable parameters"),
    Claim("rm-ranks-pairs", "rlhf", "The reward model ranks held-out preference pairs well"),
    Claim("ppo-reward-kl", "rlhf", "PPO raises reward with bounded KL"),
]


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    target: str  # "module:function"
    version: int = 1
    expected_s: dict = field(default_factory=dict)  # budget -> rough seconds, for the progress estimate


STAGES = [
    Stage("embeddings", "Stage 1: word embeddings (word2vec CBOW vs skip-gram)", "hfrepro.embeddings.stage:reproduce",
          expected_s={"tiny": 40, "default": 75, "full": 1200}),
    Stage("lm", "Stage 2: language models (n-gram, LSTM, GPT, BERT), perplexity, sampling",
          "hfrepro.lm.stage:reproduce", expected_s={"tiny": 45, "default": 85, "full": 3600}),
    Stage("seq2seq", "Stage 3: translation (seq2seq with and without attention, BLEU)",
          "hfrepro.seq2seq.stage:reproduce", expected_s={"tiny": 45, "default": 150, "full": 3600}),
    Stage("fewshot", "Stage 4: zero-, one- and few-shot in-context learning", "hfrepro.fewshot.stage:reproduce",
          expected_s={"tiny": 45, "default": 65, "full": 1800}),
    Stage("finetune", "Stage 5: fine-tuning (head-only, LoRA, full)", "hfrepro.finetune.stage:reproduce",
          expected_s={"tiny": 45, "default": 85, "full": 1800}),
    Stage("rlhf", "Stage 6: RLHF (SFT, reward model, PPO)", "hfrepro.rlhf.stage:reproduce",
          expected_s={"tiny": 45, "default": 300, "full": 3600}),
]
STAGE_NAMES = [s.name for s in STAGES]


@dataclass
class StageContext:
    dir: Path            # this stage's folder (inside the run folder)
    root: Path           # the run folder holding REPORT.md
    budget: str
    seed: int
    threads: int

    def rel(self, path: str | Path) -> str:
        """A path relative to REPORT.md, for links and images in the stage's Markdown."""
        return os.path.relpath(Path(path), self.root).replace(os.sep, "/")


@dataclass
class StageResult:
    markdown: str
    claims: dict[str, tuple[str, bool | None]] = field(default_factory=dict)  # id -> (evidence, held?)
    metrics: dict[str, Any] = field(default_factory=dict)


# --- one stage, in its own process -----------------------------------------------------------------------

def _stage_key(stage: Stage, budget: str, seed: int) -> dict:
    """What a finished stage's result depends on: a result is reused only when all of it is the same. `config`
    hashes the stage module's source, where each stage keeps its budgets, so editing them re-runs the stage."""
    return {"stage": stage.name, "version": stage.version, "budget": budget, "seed": seed,
            "config": _source_hash(stage.target.split(":")[0])}


def _source_hash(module: str) -> str | None:
    import hashlib
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return None
    return hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()[:16]


def run_stage_inprocess(stage: Stage, out: Path, budget: str, seed: int, threads: int) -> dict:
    from hfrepro.training import setup_runtime

    setup_runtime(seed=seed, threads=threads)
    sdir = out / stage.name
    sdir.mkdir(parents=True, exist_ok=True)
    mod_name, fn_name = stage.target.split(":")
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError):
        result = {"status": "not implemented", "markdown": "_This stage is not implemented yet._",
                  "claims": {}, "metrics": {}}
    else:
        ctx = StageContext(dir=sdir, root=out, budget=budget, seed=seed, threads=threads)
        t0 = time.time()
        try:
            r: StageResult = fn(ctx)
            result = {"status": "ok", "markdown": r.markdown,
                      "claims": {k: [ev, held] for k, (ev, held) in r.claims.items()}, "metrics": r.metrics}
        except UserError as e:
            result = {"status": "failed", "markdown": f"**Stage failed:** {e.what}", "claims": {}, "metrics": {},
                      "error": e.render()}
        result["seconds"] = round(time.time() - t0, 1)
    result["key"] = _stage_key(stage, budget, seed)
    atomic_write_json(sdir / "result.json", result)
    return result


def _run_stage_subprocess(stage: Stage, out: Path, budget: str, seed: int, threads: int) -> tuple[dict, float, int]:
    """Returns (result, wall seconds, peak RSS bytes of the stage's process tree)."""
    cmd = [sys.executable, "-m", "hfrepro.reproduce", "--_stage", stage.name, "--out", str(out),
           "--budget", budget, "--seed", str(seed), "--threads", str(threads)]
    t0 = time.time()
    proc = subprocess.Popen(cmd)
    _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - t0
    peak = rusage.ru_maxrss * 1024  # Linux: kilobytes (the largest single process of the tree)
    f = out / stage.name / "result.json"
    if f.is_file() and read_json(f).get("key") == _stage_key(stage, budget, seed) and proc.returncode == 0:
        result = read_json(f)
    else:
        result = {"status": "crashed", "markdown": f"**Stage crashed** (exit code {proc.returncode}); see the "
                  "output above.", "claims": {}, "metrics": {}, "key": _stage_key(stage, budget, seed)}
    result["wall_seconds"], result["peak_rss_bytes"] = round(wall, 1), peak
    atomic_write_json(f, result)
    return result, wall, peak


# --- the whole road --------------------------------------------------------------------------------------

def reproduce(stages: list[str], budget: str, out: Path, seed: int = 0, threads: int | None = None,
              force: bool = False) -> Path:
    if budget not in BUDGETS:
        raise UserError(f"unknown budget {budget!r}", fix=f"use one of: {', '.join(BUDGETS)}")
    unknown = [s for s in stages if s not in STAGE_NAMES]
    if unknown:
        raise UserError(f"unknown stage(s): {', '.join(unknown)}", fix=f"stages: {', '.join(STAGE_NAMES)}")
    threads = threads or int(os.environ.get("HFREPRO_THREADS", 0)) or (os.cpu_count() or 1)
    out.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in STAGES if s.name in stages]
    results: dict[str, dict] = {}
    t_start = time.time()
    for k, stage in enumerate(chosen, 1):
        f = out / stage.name / "result.json"
        prev = read_json(f) if f.is_file() else None
        elapsed = time.time() - t_start
        left = sum(s.expected_s.get(budget, 60) for s in chosen[k - 1:])
        head = f"[reproduce] stage {k}/{len(chosen)}: {stage.name}  (elapsed {_mmss(elapsed)}, estimate {_mmss(left)} left)"
        if (not force and prev and prev.get("key") == _stage_key(stage, budget, seed)
                and prev.get("status") == "ok"):
            print(head + " -- already done with this config, skipped", flush=True)
            results[stage.name] = prev
            continue
        print(head, flush=True)
        result, wall, peak = _run_stage_subprocess(stage, out, budget, seed, threads)
        print(f"[reproduce] {stage.name}: {result['status']} in {_mmss(wall)}, peak memory {peak / 2**30:.2f} GiB",
              flush=True)
        results[stage.name] = result
    # Stages finished earlier in this folder with the same key (e.g. `--stages rlhf` after the others) stay in
    # the report, so REPORT.md always covers every stage the folder holds a current result for.
    for stage in STAGES:
        f = out / stage.name / "result.json"
        if stage.name not in results and f.is_file():
            prev = read_json(f)
            if prev.get("key") == _stage_key(stage, budget, seed) and prev.get("status") == "ok":
                results[stage.name] = prev
    report = write_report(out, budget, seed, threads, results)
    bench = {s.name: {"status": results[s.name].get("status"), "wall_seconds": results[s.name].get("wall_seconds"),
                      "peak_rss_bytes": results[s.name].get("peak_rss_bytes")} for s in STAGES if s.name in results}
    atomic_write_json(out / "timings.json", {"budget": budget, "threads": threads, "stages": bench,
                                             "total_seconds": round(time.time() - t_start, 1)})
    print(f"[reproduce] done in {_mmss(time.time() - t_start)}: {report}")
    return report


def verdicts(results: dict[str, dict]) -> list[dict]:
    rows = []
    for c in CLAIMS:
        r = results.get(c.stage)
        got = (r or {}).get("claims", {}).get(c.id)
        if got is None:
            why = {None: "stage not run", "not implemented": "stage not implemented yet",
                   "failed": "stage failed", "crashed": "stage crashed"}.get((r or {}).get("status"),
                                                                             "not measured by this stage")
            rows.append({"claim": c.text, "evidence (this run)": why, "verdict": NOT_RUN})
        else:
            evidence, held = got
            verdict = NOT_RUN if held is None else (REPRODUCED if held else NOT_REPRODUCED)
            rows.append({"claim": c.text, "evidence (this run)": evidence, "verdict": verdict})
    return rows


def write_report(out: Path, budget: str, seed: int, threads: int, results: dict[str, dict]) -> Path:
    from hfrepro import __version__
    from hfrepro.report import md_table

    lines = [
        "# hfrepro: from word2vec to ChatGPT, reproduced on this machine", "",
        f"- budget `{budget}`, seed {seed}, {threads} torch thread(s), hfrepro {__version__}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{_versions()}",
        f"- written {_dt.datetime.now().isoformat(timespec='seconds')}", "",
        "Every verdict below comes from a number this run measured. A claim from the literature that does not "
        "hold at this scale is marked NOT REPRODUCED, with the number that decided it; a claim no stage "
        "measured is NOT RUN.", "", "## Claims", "", md_table(verdicts(results)), "",
    ]
    timing = [{"stage": s.title, "status": results[s.name].get("status"),
               "wall time (s)": results[s.name].get("wall_seconds"),
               "peak memory (GiB)": (results[s.name].get("peak_rss_bytes") or 0) / 2**30}
              for s in STAGES if s.name in results]
    if timing:
        lines += ["## Time and memory", "", md_table(timing, digits=2), ""]
    for s in STAGES:
        if s.name in results:
            lines += [f"## {s.title}", "", results[s.name].get("markdown", "").strip(), ""]
    return atomic_write_text(out / "REPORT.md", "\n".join(lines))


def _versions() -> str:
    import importlib.metadata as md
    out = []
    for p in ("torch", "transformers", "trl", "peft", "gensim"):
        try:
            out.append(f"{p} {md.version(p)}")
        except md.PackageNotFoundError:
            pass
    return ", ".join(out)


def _mmss(s: float) -> str:
    s = int(s)
    return f"{s // 60}m{s % 60:02d}s"


# --- command line ----------------------------------------------------------------------------------------

def register(sub) -> None:
    p = sub.add_parser("reproduce", help="run every stage and write REPORT.md with the claims table",
                       description="Run the stages with their default configs on the embedded assets, offline, "
                                   "and write REPORT.md (+ PNGs) in the output folder. Re-running skips the "
                                   "stages already finished with the same budget and seed.")
    p.add_argument("--stages", default=",".join(STAGE_NAMES),
                   help=f"comma-separated subset of: {', '.join(STAGE_NAMES)} (default: all)")
    p.add_argument("--budget", default="default", choices=BUDGETS,
                   help="tiny: CI-sized smoke run; default: <=15 min on 2 CPU cores; full: for a GPU machine")
    p.add_argument("--out", default=None, help="run folder (default: runs/reproduce-<budget>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--force", action="store_true", help="re-run stages even if already finished")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    out = Path(args.out or f"runs/reproduce-{args.budget}")
    reproduce(stages, args.budget, out, seed=args.seed, threads=args.threads, force=args.force)
    results = {s: read_json(out / s / "result.json") for s in stages if (out / s / "result.json").is_file()}
    return 1 if any(r.get("status") in ("failed", "crashed") for r in results.values()) else 0


def _stage_main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--_stage", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    a = ap.parse_args()
    stage = next(s for s in STAGES if s.name == a._stage)
    run_stage_inprocess(stage, Path(a.out), a.budget, a.seed, a.threads)


if __name__ == "__main__":
    from hfrepro.errors import run_main
    run_main(_stage_main)

