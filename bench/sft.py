"""SFT training throughput: hfrepro's recipe (`hfrepro sft`) against a plain TRL SFTTrainer script with the same
settings (target: ratio >= 0.95). Same model, rows, method, steps, batch, learning rate, max_length, threads.

    .venv/bin/python bench/sft.py                       # LoRA, 12 steps x 8 rows of stage 7's task, 3 rounds
    .venv/bin/python bench/sft.py --method full --rounds 2 --threads 2

Each run is its own process; the order alternates (ours, plain, plain, ours, ...) so drifting machine load
hits both alike; the median tokens/sec of each side is compared. Writes bench/results/sft.json, prints a
Markdown table.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hfrepro.finetune.training_data import training_rows  # noqa: E402
from hfrepro.fsutil import atomic_write_json  # noqa: E402
from hfrepro.models import resolve  # noqa: E402
from hfrepro.report import md_table  # noqa: E402


def run_one(side: str, a, data: Path, model: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(a.threads),
           "HFREPRO_THREADS": str(a.threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if side == "ours":      # the recipe, as a user runs it; its metrics.json has the same measurements
        out = tempfile.mkdtemp(prefix="sft-bench-")
        cmd = [sys.executable, "-m", "hfrepro", "sft", "--model", model, "--train_file", str(data),
               "--method", a.method, "--max_steps", str(a.max_steps), "--per_device_train_batch_size",
               str(a.batch_size), "--learning_rate", str(a.learning_rate), "--max_length", str(a.max_length),
               "--logging_steps", "1", "--save_strategy", "no", "--save_model", "false", "--seed", "0",
               "--data_seed", "0", "--threads", str(a.threads), "--output_dir", out]
    else:
        cmd = [sys.executable, str(REPO / "bench" / "sft_plain_trl.py"), "--model", model, "--data", str(data),
               "--method", a.method, "--max_steps", str(a.max_steps), "--batch_size", str(a.batch_size),
               "--learning_rate", str(a.learning_rate), "--max_length", str(a.max_length), "--threads",
               str(a.threads)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if p.returncode != 0:
        raise SystemExit(f"{side} run failed:\n{p.stderr[-3000:]}")
    if side == "ours":
        m = json.loads((Path(out) / "metrics.json").read_text())
        return {"tokens": m["tokens_seen"], "seconds": m["train_seconds"], "train_loss": m["train_loss"],
                "steps": m["steps"]}
    return json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="lora", choices=["lora", "full"])
    ap.add_argument("--max_steps", type=int, default=12)
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--learning_rate", type=float, default=1e-3)
    ap.add_argument("--max_length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    a = ap.parse_args()

    model = resolve(a.model)
    data = Path(tempfile.mkdtemp(prefix="sft-bench-")) / "rows.jsonl"
    rows = training_rows("word_class", a.max_steps * a.batch_size)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = {"ours": [], "plain": []}
    order = []
    for i in range(a.rounds):
        order += ["ours", "plain"] if i % 2 == 0 else ["plain", "ours"]
    for side in order:
        r = run_one(side, a, data, model)
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
        runs[side].append(r)
        print(f"  {side:5s} {r['tokens']:,} tokens in {r['seconds']:.2f}s = {r['tokens_per_s']:.1f} tokens/s "
              f"(loss {r['train_loss']:.4f})", flush=True)
    med = {s: statistics.median(x["tokens_per_s"] for x in v) for s, v in runs.items()}
    ratio = med["ours"] / med["plain"]
    same = all(r["tokens"] == runs["ours"][0]["tokens"] for r in runs["ours"] + runs["plain"])
    losses_match = abs(runs["ours"][0]["train_loss"] - runs["plain"][0]["train_loss"]) < 1e-3
    table = [{"side": "hfrepro sft (the recipe)", "median tokens/s": med["ours"],
              "runs": ", ".join(f"{x['tokens_per_s']:.1f}" for x in runs["ours"])},
             {"side": "plain TRL SFTTrainer", "median tokens/s": med["plain"],
              "runs": ", ".join(f"{x['tokens_per_s']:.1f}" for x in runs["plain"])}]
    out = {"method": a.method, "max_steps": a.max_steps, "batch_size": a.batch_size, "threads": a.threads,
           "cpu_count": os.cpu_count(), "tokens_per_run": runs["ours"][0]["tokens"], "same_tokens": same,
           "same_first_loss": losses_match, "median_tokens_per_s": med, "ratio": ratio, "target": 0.95,
           "meets_target": ratio >= 0.95, "runs": runs, "load_average": os.getloadavg(),
           "date": time.strftime("%Y-%m-%d %H:%M")}
    atomic_write_json(REPO / "bench" / "results" / "sft.json", out)
    print(md_table(table, digits=1))
    print(f"ratio hfrepro / plain TRL = {ratio:.3f} (target >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'}); "
          f"same tokens: {same}; same train loss: {losses_match}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
