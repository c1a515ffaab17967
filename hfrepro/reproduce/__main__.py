"""One stage of `hfrepro reproduce`, in its own process (the runner starts it)."""

import argparse
import signal
from pathlib import Path

from hfrepro.errors import run_main
from hfrepro.reproduce.plan import STAGES
from hfrepro.reproduce.runner import run_stage_inprocess


def _stop(_sig, _frame):
    raise KeyboardInterrupt  # SIGTERM stops the stage like Ctrl-C: its recipes resume next time


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    ap = argparse.ArgumentParser(prog="python -m hfrepro.reproduce")
    ap.add_argument("--stage", required=True, choices=[s.name for s in STAGES])
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args()
    stage = next(s for s in STAGES if s.name == a.stage)
    run_stage_inprocess(stage, Path(a.out), a.budget, a.seed, a.threads, overwrite=a.overwrite)


if __name__ == "__main__":
    run_main(main)
