"""Training time with denormal floats flushed to zero (runtime.flush_denormals, the default) against kept
(HFREPRO_DENORMALS=keep), and whether the trained weights are the same bit for bit.

    .venv/bin/python bench/denormals.py                   # the GRU translator with attention, 150 updates, en->ko
    .venv/bin/python bench/denormals.py --rounds 3 -- clm --max_steps 200

Each side runs the same recipe command in its own process, alternately (keep, flush, keep, flush, ...), one
thread; the time is the recipe's own `train_seconds` (metrics.json of the model's folder), and the model files
of the two sides are compared byte for byte (a run that saves no weights: its metrics.json without timings).
Writes bench/results/denormals.json and prints a Markdown table.
Target: flushed takes at most 0.95 of the time, with the same weights.
"""

import argparse
import filecmp
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.pairs import run_recipe  # noqa: E402
from hfrepro.fsutil import atomic_write_json  # noqa: E402
from hfrepro.report import md_table  # noqa: E402

TARGET = 0.95
DEFAULT = ["seq2seq", "--arch", "rnn_attention", "--max_steps", "150", "--eval_steps", "1000", "--save_steps",
           "1000", "--max_eval_examples", "200"]


TIMING = ("second", "time", "peak", "memory", "rss", "date", "throughput", "per_s")


def results_of(metrics: dict) -> dict:
    """A run's metrics without its timings and memory: what must not change."""
    return {k: v for k, v in metrics.items() if not any(t in k.lower() for t in TIMING)}


def run_one(cmd: list[str], folder: Path, keep: bool) -> tuple[float, Path]:
    env = {k: v for k, v in os.environ.items() if k != "HFREPRO_DENORMALS"}
    if keep:
        env["HFREPRO_DENORMALS"] = "keep"
    metrics = run_recipe(cmd, folder, env=env)
    return float(json.loads(metrics.read_text())["train_seconds"]), metrics.parent / "model.safetensors"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2, help="pairs of runs (keep, flush), alternating")
    ap.add_argument("recipe", nargs="*", help="a recipe command after --; default: " + " ".join(DEFAULT))
    a = ap.parse_args()
    cmd = a.recipe or DEFAULT
    work = Path(tempfile.mkdtemp(prefix="denormals-bench-"))
    seconds: dict[str, list[float]] = {"kept": [], "flushed": []}
    models: dict[str, Path] = {}
    for i in range(a.rounds):
        for side in ("kept", "flushed"):
            s, models[side] = run_one(cmd, work / f"{side}{i}", keep=side == "kept")
            seconds[side].append(s)
    if models["kept"].is_file():  # the weights, byte for byte; else (a run that keeps none) its results
        same = filecmp.cmp(models["kept"], models["flushed"], shallow=False)
    else:
        same = all(results_of(json.loads((models[k].parent / "metrics.json").read_text())) ==
                   results_of(json.loads((models["kept"].parent / "metrics.json").read_text())) for k in models)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    ratio = med["flushed"] / med["kept"]
    result = {"command": "hfrepro " + " ".join(cmd), "seconds": seconds, "median": med, "ratio": round(ratio, 3),
              "target": TARGET, "met": ratio <= TARGET and same, "same_weights": same,
              "load_average": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d")}
    atomic_write_json(REPO / "bench/results/denormals.json", result)
    print(md_table([{"denormals": k, "train seconds": " / ".join(f"{s:.1f}" for s in v), "median": med[k]}
                    for k, v in seconds.items()], digits=2))
    print(f"\nratio {ratio:.3f} (target <= {TARGET}); the same weights (or results) bit for bit: {same}")


if __name__ == "__main__":
    main()
