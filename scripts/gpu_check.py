"""Run every accelerate config (DDP, FSDP, DeepSpeed ZeRO-2, ZeRO-3) for a few steps of `clm`, `sft` and `ppo` at
the `full` budget in bf16 on a GPU machine, and print one table: steps/s, peak memory, MFU.

    bash scripts/gpu_check.sh            # a machine with CUDA GPUs (DeepSpeed rows need `pip install deepspeed`)
    bash scripts/gpu_check.sh --dry-run  # anywhere: configs load, every run's arguments validate, commands shown
    bash scripts/gpu_check.sh --cpu      # anywhere: the same measurement on CPU processes, tiny budget (DDP, FSDP)

Each run is `accelerate launch --config_file recipes/accelerate/<config>.yaml --num_processes <GPUs> <probe> <recipe>
--budget full --max_steps N ...`: the recipe itself, with a probe callback that records in every process the world
size, accelerate's distributed type, the wall time from the first to the last step, the Trainer's FLOPs and the
peak memory. MFU = FLOPs per second / (measured bf16 matmul peak of one device x processes). Writes
<out>/gpu_check.json and <out>/gpu_check.md. docs/gpu_check.md says where it was run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"DDP": "multi_gpu", "FSDP": "fsdp", "ZeRO-2": "deepspeed_zero2", "ZeRO-3": "deepspeed_zero3"}
# recipe -> (its config name under recipes/configs, wiring arguments); {out} is this check's folder
RECIPES = {
    "clm": ("clm", ["--eval_strategy", "no", "--save_strategy", "no"]),
    "sft": ("sft/full", ["--save_strategy", "no"]),
    "ppo": ("ppo", ["--reward_model_path", "{out}/reward", "--save_strategy", "no", "--eval_prompts", "0"]),
}
PROBE = REPO / "scripts" / "gpu_check_probe.py"


def peak_flops(device: str, dtype_name: str, n: int, reps: int) -> float:
    """Measured matmul peak of one device (FLOP/s): the best of `reps` n x n x n products."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(reps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def commands(args, n_proc: int) -> list[dict]:
    """Every (config, recipe) run: its command line, or why it is skipped."""
    import importlib.util

    out = Path(args.out)
    budget = "tiny" if args.cpu else "full"
    have_ds = importlib.util.find_spec("deepspeed") is not None
    plan = []
    for label, cfg in CONFIGS.items():
        for recipe in args.recipes:
            config, wiring = RECIPES[recipe]
            skip = None
            if cfg.startswith("deepspeed") and args.cpu:
                skip = "DeepSpeed needs CUDA"
            elif cfg.startswith("deepspeed") and not have_ds and not args.dry_run:
                skip = "deepspeed is not installed (pip install deepspeed)"
            launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                      str(REPO / "recipes" / "accelerate" / f"{cfg}.yaml"), "--num_processes", str(n_proc)]
            if not args.cpu:
                launch += ["--mixed_precision", "bf16"]
            argv = [recipe, "--config", config, "--budget", budget, "--max_steps", str(args.steps),
                    "--logging_steps", "1", "--output_dir", str(out / f"{cfg}-{recipe}"),
                    *(w.replace("{out}", str(out)) for w in wiring)]
            plan.append({"config": label, "recipe": recipe, "skip": skip, "cmd": [*launch, str(PROBE), *argv]})
    return plan


def prepare(args) -> str | None:
    """What PPO needs first: a reward model (a few steps of `reward`, one process). Returns a problem or None."""
    if "ppo" not in args.recipes or args.dry_run:
        return None
    budget = "tiny" if args.cpu else "full"
    cmd = [sys.executable, "-m", "hfrepro", "reward", "--budget", budget, "--max_steps", str(args.steps),
           "--output_dir", str(Path(args.out) / "reward"), "--save_strategy", "no"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    return None if r.returncode == 0 else "reward model for PPO failed: " + r.stderr.strip().splitlines()[-1]


def config_problem(item: dict) -> str | None:
    """The accelerate config as `accelerate launch` reads it: None if it loads."""
    from accelerate.commands.config.config_args import load_config_from_file

    path = item["cmd"][item["cmd"].index("--config_file") + 1]
    try:
        load_config_from_file(path)
    except Exception as e:  # noqa: BLE001 - the finding
        return f"failed: {Path(path).name} does not load: {type(e).__name__}: {e}"
    return None


def run_one(item: dict, args, peak: float) -> dict:
    row = {"config": item["config"], "recipe": item["recipe"]}
    if item["skip"]:
        return {**row, "status": f"skipped: {item['skip']}"}
    probe_dir = Path(args.out) / "probes" / f"{item['config']}-{item['recipe']}"
    probe_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GPU_CHECK_PROBE": str(probe_dir), "GPU_CHECK_PARSE_ONLY": "1" if args.dry_run else ""}
    cmd = item["cmd"]
    if args.dry_run:  # the recipe's arguments as the recipe parses them, in one plain process
        cmd = [sys.executable, *cmd[cmd.index(str(PROBE)):]]
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    if r.returncode != 0:
        last = [x for x in r.stderr.strip().splitlines() if x.strip()]
        return {**row, "status": "failed: " + (last[-1][:160] if last else f"exit {r.returncode}")}
    if args.dry_run:
        return {**row, "status": "arguments valid (dry run)"}
    recs = [json.loads(p.read_text()) for p in sorted(probe_dir.glob("rank*.json"))]
    if not recs:
        return {**row, "status": f"ran in {time.time() - t:.0f}s, but the probe saw no Trainer"}
    world = recs[0]["world_size"]
    secs = max(r["seconds"] for r in recs)
    steps = recs[0]["steps"]
    flops = recs[0]["total_flos"]
    return {**row, "status": "ok", "processes": world, "distributed": recs[0]["distributed_type"].split(".")[-1],
            "steps/s": round(steps / secs, 3) if secs else None,
            "peak memory GiB": round(max(r["peak_memory_bytes"] for r in recs) / 2 ** 30, 2),
            "MFU": round(flops / secs / (peak * world), 3) if secs and flops else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="validate configs and arguments; run nothing")
    ap.add_argument("--cpu", action="store_true", help="measure on CPU processes at the tiny budget (no GPU needed)")
    ap.add_argument("--steps", type=int, default=10, help="optimizer steps per run (default 10)")
    ap.add_argument("--recipes", default="clm,sft,ppo", help="comma-separated, of: " + ", ".join(RECIPES))
    ap.add_argument("--out", default="runs/gpu_check", help="folder for the runs and the table")
    args = ap.parse_args(argv)
    args.recipes = [r for r in args.recipes.split(",") if r]
    bad = [r for r in args.recipes if r not in RECIPES]
    if bad:
        print(f"error: unknown recipe(s) {bad}; use {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    import torch

    gpus = torch.cuda.device_count()
    if not gpus and not (args.cpu or args.dry_run):
        print("error: no CUDA GPU on this machine\n  fix: run it on a GPU machine, or pass --dry-run (check the "
              "commands) or --cpu (the same measurement on CPU processes, tiny budget)", file=sys.stderr)
        return 2
    n_proc = 2 if args.cpu or not gpus else gpus
    Path(args.out).mkdir(parents=True, exist_ok=True)
    peak = 0.0 if args.dry_run else (peak_flops("cuda", "bfloat16", 8192, 10) if not args.cpu
                                     else peak_flops("cpu", "float32", 1024, 10))
    problem = prepare(args)
    rows, parsed = [], {}
    for item in commands(args, n_proc):
        if problem and item["recipe"] == "ppo":
            item["skip"] = problem
        print(("would run: " if args.dry_run else "running: ") + " ".join(item["cmd"][3:]), flush=True)
        if args.dry_run and config_problem(item):
            rows.append({"config": item["config"], "recipe": item["recipe"], "status": config_problem(item)})
            continue
        if args.dry_run and item["recipe"] in parsed:  # the arguments do not depend on the config: parse once
            rows.append({**parsed[item["recipe"]], "config": item["config"]})
            continue
        rows.append(run_one(item, args, peak))
        parsed[item["recipe"]] = rows[-1]
    return report(rows, args, gpus, n_proc, peak)


def report(rows: list[dict], args, gpus: int, n_proc: int, peak: float) -> int:
    sys.path.insert(0, str(REPO))
    import torch

    from hfrepro.report import md_table

    where = (f"{gpus} x {torch.cuda.get_device_name(0)}" if gpus else "CPU") + f", {n_proc} processes"
    mode = "dry run" if args.dry_run else ("CPU, tiny budget, fp32" if args.cpu else "full budget, bf16")
    head = (f"gpu_check: {mode}; {where}; {args.steps} steps per run; measured matmul peak "
            f"{peak / 1e12:.2f} TFLOP/s per device" if peak else f"gpu_check: {mode}; {where}")
    cols = ["config", "recipe", "status", "processes", "distributed", "steps/s", "peak memory GiB", "MFU"]
    table = md_table([{c: r.get(c, "") for c in cols} for r in rows])
    print("\n" + head + "\n\n" + table)
    out = Path(args.out)
    (out / "gpu_check.md").write_text(head + "\n\n" + table, encoding="utf-8")
    (out / "gpu_check.json").write_text(json.dumps({"mode": mode, "where": where, "peak_flops": peak,
                                                    "rows": rows}, indent=2), encoding="utf-8")
    return 0 if all(r["status"].startswith(("ok", "skipped", "arguments valid")) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
