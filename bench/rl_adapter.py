"""Seconds per RL update with the policy's adapter in every block against the top N blocks only
(`hfrepro rlhf --rl_lora_layers N`: the blocks below are frozen, run once per batch of rollouts and reused).

    .venv/bin/python bench/rl_adapter.py                      # PPO, adapter in every block vs the top 8, 3 updates
    .venv/bin/python bench/rl_adapter.py --layers 4 --algo reinforce --rounds 3

The first run trains the SFT policy and the reward model once (the default budget's settings); every run after it
reuses them, so each run differs from the other side only in where the adapter sits. Runs alternate (every block,
top N, every block, top N, ...), each a fresh `hfrepro rlhf` process, and the time per update is read from each
run's log.jsonl (`update_seconds`: rollouts, scoring and learning; loading and evaluation are not in it).
Writes bench/results/rl_adapter.json and prints a Markdown table. Target: the top-N adapter's update takes at most
0.6 of the time of the adapter in every block (the ratio of medians over the pairs).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from hfrepro.fsutil import atomic_write_json  # noqa: E402
from hfrepro.report import md_table  # noqa: E402
from hfrepro.runtime import read_log  # noqa: E402

TARGET = 0.6


def run_one(folder: Path, layers: int, a) -> list[float]:
    """One `hfrepro rlhf` run; returns its seconds per update."""
    cmd = [sys.executable, "-m", "hfrepro", "rlhf", "--budget", "default", "--eval_split", "validation",
           "--seed", str(a.seed), "--threads", str(a.threads), "--algo", a.algo, "--rl_steps", str(a.updates),
           "--eval_prompts", "4", "--rl_lora_layers", str(layers), "--output_dir", str(folder)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [r["update_seconds"] for r in read_log(folder / a.algo / "log.jsonl") if "update_seconds" in r]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=8, help="the top N blocks (the other side: every block)")
    ap.add_argument("--algo", default="ppo", choices=["reinforce", "rloo", "a2c", "ppo"])
    ap.add_argument("--updates", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="pairs of runs (every block, top N), alternating")
    ap.add_argument("--seed", type=int, default=3, help="a development seed: the validation prompts are used")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("HFREPRO_THREADS", 0)) or 2)
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rl-adapter-bench-"))
    sides = {0: "every block", a.layers: f"top {a.layers} blocks"}
    per_update: dict[int, list[list[float]]] = {0: [], a.layers: []}
    first = None
    for i in range(a.rounds):
        for layers in (0, a.layers):
            folder = work / f"run{i}-{layers}"
            if first is not None:  # the SFT policy and reward model of the first run, reused
                folder.mkdir()
                for step in ("sft", "reward"):
                    shutil.copytree(first / step, folder / step)
            per_update[layers].append(run_one(folder, layers, a))
            first = first or folder
            print(f"  {sides[layers]:>14s}: " + ", ".join(f"{s:.2f}" for s in per_update[layers][-1]) + " s/update",
                  flush=True)
    med = {k: statistics.median(s for run in v for s in run) for k, v in per_update.items()}
    pairs = [statistics.median(t) / statistics.median(e) for e, t in zip(per_update[0], per_update[a.layers])]
    ratio = med[a.layers] / med[0]
    table = [{"adapter": sides[k], "median s/update": med[k],
              "runs": " | ".join(", ".join(f"{s:.1f}" for s in run) for run in per_update[k])} for k in sides]
    out = {"algo": a.algo, "layers": a.layers, "updates": a.updates, "rounds": a.rounds, "threads": a.threads,
           "cpu_count": os.cpu_count(), "seconds_per_update": {sides[k]: v for k, v in per_update.items()},
           "median_seconds_per_update": {sides[k]: v for k, v in med.items()}, "ratio_per_pair": pairs,
           "ratio": ratio, "target": TARGET, "meets_target": ratio <= TARGET, "load_average": os.getloadavg(),
           "date": time.strftime("%Y-%m-%d %H:%M")}
    atomic_write_json(REPO / "bench" / "results" / "rl_adapter.json", out)
    shutil.rmtree(work, ignore_errors=True)
    print(md_table(table, digits=2))
    print(f"top {a.layers} / every block = {ratio:.3f} (per pair: {', '.join(f'{p:.3f}' for p in pairs)}; target "
          f"<= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'}); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
