"""PPO update time: hfrepro's PPO (`hfrepro ppo`, recipes/ppo.py: PPOTrainer + `PPOSession`'s per-step logs,
rollout samples scored by the reward model, checkpoints, generation timer) against the bare TRL PPO example
(trl/examples/scripts/ppo/ppo.py: load four models, build `PPOTrainer`, `train()`), same models, same PPOConfig
settings, same data, same process. Also the share of the time spent generating rollouts.

    .venv/bin/python bench/ppo.py                       # 6 updates x 8 rollouts, SmolLM2-135M, LoRA r=16
    HFREPRO_THREADS=2 .venv/bin/python bench/ppo.py --updates 8 --repeats 2

Target: hfrepro / bare <= 1.05 per update, timed around `trainer.train()` on both sides (what hfrepro adds
there: the per-step log, rollout samples scored by the reward model, checkpoints of the trainable weights and
optimizer, the generation timer). The whole run (loading the four models, building the trainer, training,
saving: the bare example saves the LoRA policy as it is, hfrepro merges it into a complete model folder; hfrepro's
side also builds its prompts and tokenizer, the bare side gets them ready-made) is reported next to it. The runs
alternate (bare, hfrepro, bare, hfrepro, ...) and the fastest of each side is kept. On a machine shared with
other work, wall-clock swings; the CPU time of this process (`cpu s/update`) is the steadier number and the
ratio is reported for both.
Writes bench/results/ppo.json and prints a Markdown table.
"""

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--updates", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--rm_layers", type=int, default=16)
    ap.add_argument("--trainable_layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("HFREPRO_THREADS", 0)) or os.cpu_count())
    ap.add_argument("--out", default="bench/results/ppo.json")
    a = ap.parse_args()

    import torch

    from hfrepro import runtime
    from hfrepro.fsutil import atomic_write_json
    from hfrepro.models import resolve
    from hfrepro.report import md_table
    from hfrepro.rlhf import prefs
    from hfrepro.rlhf.models import load_scorer, load_tokenizer

    runtime.setup(seed=0, threads=a.threads)
    tok = load_tokenizer(a.model)
    policy_path = resolve(a.model)
    rows = prefs.unique_prompts(prefs.embedded_preferences(0)["train"])
    tmp = Path(tempfile.mkdtemp(prefix="bench-ppo-"))
    rm_path = tmp / "rm"  # a reward model of the size the recipe uses (untrained head: timing only)
    load_scorer(policy_path, tok, layers=a.rm_layers).save_pretrained(rm_path)
    tok.save_pretrained(rm_path)

    results = {"bare": [], "hfrepro": []}
    gen_share = []
    for rep in range(a.repeats):
        for side in ("bare", "hfrepro"):
            c0, t0 = time.process_time(), time.perf_counter()
            if side == "bare":
                extra = _bare(policy_path, str(rm_path), tok, rows, _config(tmp / f"bare-{rep}", a), a)
            else:
                m = _ours(str(rm_path), a, tmp / f"run-{rep}")
                extra = {"train_wall": m["train_seconds"], "train_cpu": m["train_cpu_seconds"],
                         "generate_share": m["generate_share"], "generate_cpu_share": m["generate_cpu_share"]}
                gen_share.append((m["generate_cpu_share"], m["generate_share"]))
            results[side].append({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, **extra})
            r = results[side][-1]
            print(f"[bench] {side} run {rep + 1}: train() {r['train_wall']:.1f}s wall {r['train_cpu']:.1f}s cpu; "
                  f"whole run {r['wall']:.1f}s wall, {r['cpu']:.1f}s cpu", flush=True)

    # per update: train() only (the step time), and the whole run (setup and saving included)
    best = {s: min(results[s], key=lambda r: r["train_cpu"]) for s in results}
    per = {s: {k: best[s][k] / a.updates for k in ("train_wall", "train_cpu", "wall", "cpu")} for s in best}
    ratio_wall = per["hfrepro"]["train_wall"] / per["bare"]["train_wall"]
    ratio_cpu = per["hfrepro"]["train_cpu"] / per["bare"]["train_cpu"]
    ratio_total_cpu = per["hfrepro"]["cpu"] / per["bare"]["cpu"]
    gen = min(gen_share)
    table = [
        {"implementation": "bare TRL PPO example", "cpu s/update": per["bare"]["train_cpu"],
         "s/update (wall)": per["bare"]["train_wall"], "whole run cpu s/update": per["bare"]["cpu"],
         "generating (cpu share)": None},
        {"implementation": "hfrepro ppo (recipes/ppo.py)", "cpu s/update": per["hfrepro"]["train_cpu"],
         "s/update (wall)": per["hfrepro"]["train_wall"], "whole run cpu s/update": per["hfrepro"]["cpu"],
         "generating (cpu share)": gen[0]},
    ]
    res = {
        "updates": a.updates, "rollouts_per_update": a.batch, "repeats": a.repeats, "threads": a.threads,
        "model": a.model, "reward_value_layers": a.rm_layers, "value_trainable_layers": a.trainable_layers,
        "ratio_wall": round(ratio_wall, 4), "ratio_cpu": round(ratio_cpu, 4),
        "ratio_whole_run_cpu": round(ratio_total_cpu, 4), "target_ratio": 1.05,
        "meets_target": bool(ratio_cpu <= 1.05), "generate_cpu_share": gen[0], "generate_wall_share": gen[1],
        "runs": results, "table": table, "load_average": os.getloadavg(),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write_json(a.out, res)
    print(md_table(table))
    print(f"hfrepro / bare per update in train(): {ratio_cpu:.3f} (cpu), {ratio_wall:.3f} (wall); whole run "
          f"{ratio_total_cpu:.3f} (cpu); target <= 1.05; generating {gen[0]:.0%} of the cpu time; "
          f"load average {res['load_average'][0]:.1f} -> {a.out}")


def _config(out: Path, a):
    from trl.experimental.ppo import PPOConfig

    from hfrepro.runtime import make_training_args
    return make_training_args(
        cls=PPOConfig, output_dir=str(out), per_device_train_batch_size=a.batch, gradient_accumulation_steps=1,
        num_mini_batches=2, num_ppo_epochs=1, total_episodes=a.updates * a.batch, learning_rate=3e-4,
        kl_coef=0.05, temperature=0.7, response_length=8, stop_token="eos", missing_eos_penalty=1.0,
        local_rollout_forward_batch_size=a.batch, num_sample_generations=0, logging_steps=1, seed=0,
        disable_tqdm=True, save_strategy="no", per_device_eval_batch_size=a.batch)


def _bare(policy_path, rm_path, tok, rows, cfg, a):
    """What trl/examples/scripts/ppo/ppo.py does, with the same models and settings."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
    from trl.experimental.ppo import PPOTrainer

    from hfrepro.rlhf.models import freeze_below
    from hfrepro.rlhf.prefs import encode_prompt

    policy = AutoModelForCausalLM.from_pretrained(policy_path)
    ref_policy = AutoModelForCausalLM.from_pretrained(policy_path)
    value_model = AutoModelForSequenceClassification.from_pretrained(rm_path, num_labels=1)
    reward_model = AutoModelForSequenceClassification.from_pretrained(rm_path, num_labels=1)
    for m in (policy, ref_policy):
        m.config.pad_token_id = m.generation_config.pad_token_id = tok.pad_token_id
    freeze_below(value_model, a.trainable_layers)
    ds = Dataset.from_dict({"input_ids": [encode_prompt(tok, r["prompt"]) for r in rows]})
    trainer = PPOTrainer(args=cfg, processing_class=tok, model=policy, ref_model=ref_policy,
                         reward_model=reward_model, value_model=value_model, train_dataset=ds,
                         eval_dataset=ds.select(range(8)),
                         peft_config=LoraConfig(r=16, lora_alpha=32, task_type="CAUSAL_LM",
                                                target_modules="all-linear"))
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    out = {"train_wall": time.perf_counter() - t0, "train_cpu": time.process_time() - c0}
    trainer.save_model(cfg.output_dir)  # the example saves the policy at the end, as ours does
    return out


def _ours(rm_path, a, run_path):
    """recipes/ppo.py with the bare side's settings (its default budget has them, but for these), no evaluation."""
    from hfrepro.recipes.ppo import cli
    n = a.updates * a.batch
    return cli(["--model", a.model, "--reward_model_path", rm_path, "--output_dir", str(run_path),
                "--total_episodes", str(n), "--per_device_train_batch_size", str(a.batch),
                "--local_rollout_forward_batch_size", str(a.batch), "--per_device_eval_batch_size", str(a.batch),
                "--value_trainable_layers", str(a.trainable_layers), "--eval_prompts", "0",
                "--save_steps", str(max(1, a.updates // 2)),  # our checkpoints are part of the overhead measured
                "--threads", str(a.threads)])


if __name__ == "__main__":
    main()
