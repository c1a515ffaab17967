"""`hfrepro reproduce`: walk the road from word2vec to ChatGPT and write REPORT.md with a claims table.

    hfrepro reproduce                       # budget `default`: the whole road on 2 CPU cores
    hfrepro reproduce --budget tiny         # CI-sized; --budget full for a GPU machine
    hfrepro reproduce --stages lm,seq2seq --out runs/mine

The plan (`plan.py`): ten stages in road order (REPORT.md numbers them so), each a module of this package that
names the recipes it runs (at the budget's configs, exactly as a user would run them) and decides its claims from
their run folders (`runner.py` runs them, `report.py` writes REPORT.md).
"""

from __future__ import annotations

from pathlib import Path

from hfrepro.config import BUDGET_NAMES
from hfrepro.fsutil import read_json
from hfrepro.reproduce.plan import available
from hfrepro.reproduce.runner import MEMORY_CAP_GIB, reproduce
from hfrepro.runtime import MAIN_JOB_PRECISIONS


def register(sub) -> None:
    p = sub.add_parser("reproduce", help="run every stage and write REPORT.md with the claims table",
                       description="Run the stages' recipes at one budget on the embedded assets, offline, and "
                                   "write REPORT.md (+ PNGs) in the output folder. Re-running skips the stages "
                                   "already finished with the same budget, seed and sources.")
    stages = available()
    names = [s.name for s in stages]
    bf16 = ", ".join(s.name for s in stages if s.cpu_bf16)  # the plan's own list, never a copy of it
    p.add_argument("--stages", default=",".join(names),
                   help=f"comma-separated subset of: {', '.join(names)} (default: all)")
    p.add_argument("--budget", default="default", choices=BUDGET_NAMES,
                   help="tiny: CI-sized smoke run; default: the 2-CPU-core run (target <= 20 min, <= 6 GB; README "
                        "gives the measured time); full: for a GPU machine")
    p.add_argument("--out", default=None, help="run folder (default: runs/reproduce-<budget>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads in all, shared by the stages side by side (default: all cores)")
    p.add_argument("--force", action="store_true", help="re-run stages even if already finished")
    p.add_argument("--jobs", type=int, default=None,
                   help="stages run side by side, each with threads/jobs torch threads and its output in "
                        "<out>/<stage>/stage.log (default: 2 on 2 or more cores at the tiny and default budgets, "
                        "1 at full; 1: one stage at a time, its output on the terminal)")
    p.add_argument("--memory_gib", type=float, default=MEMORY_CAP_GIB,
                   help="with --jobs > 1: start a stage only while the running stages' expected peak memory "
                        f"(their peaks one at a time, in GiB) stays under this (default: {MEMORY_CAP_GIB})")
    p.add_argument("--precision", default="auto", choices=MAIN_JOB_PRECISIONS,
                   help="auto (default): bf16 on a CPU with AMX, fp32 elsewhere; bf16: the stages whose training "
                        f"it speeds up and whose verdicts it keeps ({bf16}) in mixed precision on the CPU "
                        "(matrix products in bfloat16; their verdicts were measured at three seeds in both "
                        "precisions, docs/CLAIMS.md); fp32: every stage in fp32 (docs/DEVELOPING.md, \"Mixed "
                        "precision on the CPU\")")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    out = Path(args.out or f"runs/reproduce-{args.budget}")
    reproduce(stages, args.budget, out, seed=args.seed, threads=args.threads, force=args.force, jobs=args.jobs,
              memory_gib=args.memory_gib, precision=args.precision)
    results = {s: read_json(out / s / "result.json") for s in stages if (out / s / "result.json").is_file()}
    statuses = {r.get("status") for r in results.values()}
    if "crashed" in statuses:
        return 1
    return 2 if "failed" in statuses else 0  # failed: a user error (its message and fix were printed)
