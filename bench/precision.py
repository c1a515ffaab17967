"""Training time in bf16 mixed precision on the CPU (`--precision bf16`, runtime.set_cpu_precision) against fp32
(the default), and what it changes in the results.

    .venv/bin/python bench/precision.py                   # full fine-tuning of SmolLM2-135M (the finetune stage's)
    .venv/bin/python bench/precision.py --rounds 3 -- reward --config recipes/configs/reward/default.yaml

Both sides run the same recipe command in their own process, alternately (bench/pairs.py), one thread; the time
is the recipe's own `train_seconds` (metrics.json of the model's folder). bf16 changes the numbers, so the
table shows both sides' results (the metrics without timings) next to the times. Writes
bench/results/precision.json and prints a Markdown table. The CPU's bf16 hardware (runtime.cpu_bf16: AMX or
AVX512-BF16) is recorded: without it bf16 is emulated and expected to be slower.
Target: bf16 takes at most 0.8 of fp32's training time on a CPU with bf16 hardware.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.denormals import results_of  # noqa: E402
from bench.pairs import alternate, ratios, run_recipe  # noqa: E402
from hfrepro.fsutil import atomic_write_json  # noqa: E402
from hfrepro.report import md_table  # noqa: E402
from hfrepro.runtime import cpu_bf16, cpu_has_amx  # noqa: E402

TARGET = 0.8
DEFAULT = ["sft", "--config", str(REPO / "recipes/configs/sft/full/default.yaml"), "--eval_limit", "32"]


def run_one(cmd: list[str], folder: Path, precision: str) -> tuple[float, dict]:
    m = json.loads(run_recipe(cmd, folder, "--precision", precision).read_text())
    return float(m["train_seconds"]), results_of(m)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2, help="pairs of runs (fp32, bf16), alternating")
    ap.add_argument("recipe", nargs="*", help="a recipe command after --; default: " + " ".join(DEFAULT))
    a = ap.parse_args()
    cmd = a.recipe or DEFAULT
    work = Path(tempfile.mkdtemp(prefix="precision-bench-"))
    fp32, bf16 = alternate(a.rounds, lambda r: run_one(cmd, work / f"fp32-{r}", "fp32"),
                           lambda r: run_one(cmd, work / f"bf16-{r}", "bf16"))
    seconds = {"fp32": [s for s, _ in fp32], "bf16": [s for s, _ in bf16]}
    fastest, paired = ratios(seconds["fp32"], seconds["bf16"])
    amx, hardware = cpu_has_amx(), cpu_bf16()
    results = {"fp32": fp32[0][1], "bf16": bf16[0][1]}
    result = {"command": "hfrepro " + " ".join(cmd), "seconds": seconds, "ratio_fastest": round(fastest, 3),
              "ratio_median_of_pairs": round(paired, 3), "target": TARGET, "cpu_has_amx": amx,
              "cpu_bf16": hardware, "met": bool(hardware) and fastest <= TARGET, "results": results,
              "repeatable": all(r == results[k] for k, runs in (("fp32", fp32), ("bf16", bf16)) for _, r in runs),
              "load_average": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d")}
    atomic_write_json(REPO / "bench/results/precision.json", result)
    keys = sorted(k for k in results["fp32"] if isinstance(results["fp32"][k], (int, float)))[:8]
    print(md_table([{"precision": k, "train seconds": " / ".join(f"{s:.1f}" for s in v),
                     **{n: results[k].get(n) for n in keys}} for k, v in seconds.items()], digits=4))
    print(f"\nbf16 / fp32: {fastest:.3f} (fastest runs), {paired:.3f} (median of pairs); target <= {TARGET} on a CPU "
          f"with bf16 hardware (this one: {hardware or 'none'}); each side's results the same in every round: "
          f"{result['repeatable']}")


if __name__ == "__main__":
    main()
