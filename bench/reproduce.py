"""Wall time and peak memory of each stage of `hfrepro reproduce` (targets on 2 CPU cores: the six original
stages of the default budget <= 15 min, the whole road <= 20 min (issue 18); peak memory <= 6 GiB).

    .venv/bin/python bench/reproduce.py                  # runs --budget default afresh (39 min on 2 cores here)
    .venv/bin/python bench/reproduce.py --budget tiny
    .venv/bin/python bench/reproduce.py --from runs/reproduce-default   # read an existing run's timings
    .venv/bin/python bench/reproduce.py --stages embeddings,lm,seq2seq,fewshot,finetune,rlhf --precision bf16

Writes bench/results/reproduce-<budget>.json and prints a Markdown table.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from hfrepro.runtime import MAIN_JOB_PRECISIONS

TARGETS = {"default": {"total_seconds": 20 * 60, "peak_gib": 6.0}, "tiny": {"total_seconds": 8 * 60, "peak_gib": 6.0}}
ORIGINAL_SIX = {"embeddings", "lm", "seq2seq", "fewshot", "finetune", "rlhf"}  # the road before issue 18's chapters


def targets(budget: str, stages) -> dict:
    """The run's targets: the default budget's whole road <= 20 min on 2 cores, its six original stages (or some
    of them) alone <= 15 (issue 18: the chapters may grow the run to 20 minutes; the six stay within 15)."""
    target = dict(TARGETS.get(budget, {}))
    if budget == "default" and set(stages) <= ORIGINAL_SIX:
        target["total_seconds"] = 15 * 60
    return target


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", default="default", choices=["tiny", "default", "full"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--jobs", type=int, default=None,
                    help="stages side by side (hfrepro reproduce --jobs; default: its own, 2 on 2 cores)")
    ap.add_argument("--from", dest="src", default=None, help="an existing run folder (skip running)")
    ap.add_argument("--stages", default=None, help="hfrepro reproduce --stages (default: all)")
    ap.add_argument("--precision", default="auto", choices=MAIN_JOB_PRECISIONS, help="hfrepro reproduce --precision")
    a = ap.parse_args()
    out = Path(a.src or f"runs/bench-reproduce-{a.budget}")
    if not a.src:
        subprocess.run([sys.executable, "-m", "hfrepro", "reproduce", "--budget", a.budget, "--out", str(out),
                        "--threads", str(a.threads), *(["--jobs", str(a.jobs)] if a.jobs else []), "--force",
                        "--precision", a.precision,
                        *(["--stages", a.stages] if a.stages else [])], check=False)
    t = json.loads((out / "timings.json").read_text())
    summary = summarize(t)
    from hfrepro.fsutil import atomic_write_json
    from hfrepro.report import md_table
    atomic_write_json(Path("bench/results") / f"reproduce-{t['budget']}.json", summary)
    print(md_table(summary["stages"], digits=2))
    if summary["earlier_stages"]:
        print(f"not timed: {', '.join(summary['earlier_stages'])} (finished by an earlier walk in {out})")
    print(f"total {t['total_seconds']:.0f} s with {summary['jobs']} stage(s) at a time, {t['threads']} thread(s) "
          f"each; max peak {summary['max_peak_gib']} GiB; targets {summary['targets'] or 'none'}")


def summarize(t: dict) -> dict:
    """The walk's table and verdicts from its timings.json. Only the stages this walk ran count (a folder that held
    an earlier walk keeps that walk's stages, marked `ran_in_this_walk: false`): their walls, their target (six
    original stages: 15 min) and the run's wall belong together."""
    ran = {s: v for s, v in t["stages"].items() if v.get("ran_in_this_walk", True)}
    rows = [{"stage": s, "status": v["status"], "wall_s": v["wall_seconds"],
             "peak_gib": round((v["peak_rss_bytes"] or 0) / 2**30, 2)} for s, v in ran.items()]
    target = targets(t["budget"], ran) if ran else {}  # nothing ran: nothing timed
    jobs = t.get("jobs", 1)
    together = t.get("peak_side_by_side_bytes")  # side by side: the overlapping stages' peaks added (a bound)
    summary = {"budget": t["budget"], "threads": t["threads"], "jobs": jobs, "cpu_count": os.cpu_count(),
               "precision": t.get("precision", "fp32"), "stages_run": sorted(ran),
               "earlier_stages": sorted(set(t["stages"]) - set(ran)),
               "stages": rows, "total_seconds": t["total_seconds"],
               "sum_stage_seconds": round(sum(r["wall_s"] or 0 for r in rows), 1),
               "max_peak_gib": (round(together / 2**30, 2) if together
                                else max((r["peak_gib"] for r in rows), default=0.0)),
               "targets": target}
    if target:  # one at a time, the stages' walls add up to the run's; side by side, the run's own wall counts
        wall = t["total_seconds"] if jobs > 1 else max(t["total_seconds"], summary["sum_stage_seconds"])
        summary["meets_time_target"] = wall <= target["total_seconds"]
        summary["meets_memory_target"] = summary["max_peak_gib"] <= target["peak_gib"]
    return summary


if __name__ == "__main__":
    main()
