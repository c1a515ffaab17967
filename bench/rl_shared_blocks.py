"""Seconds per batch of rollouts with the reward model's lowest blocks run once for the policy and the reward
model (PPOTrainer.shared, the default) against each model running its own (`shared` 0).

    .venv/bin/python bench/rl_shared_blocks.py --run runs/rlhf        # the SFT policy and reward model of a run

In hfrepro's RLHF the reward model is the SFT model's first 16 blocks with the top 4 trained, and the policy is
the SFT model with its RL adapter in the top 8: blocks 0-11 are the same weights in both, and one pass of them
feeds the policy's blocks 12-21, the reward model's 12-15 and the critic. One PPO trainer (the default budget's
settings: 32 rollouts, the adapter in the top 8 blocks, the critic) samples and measures the same batch of
prompts alternately both ways, `--rounds` times each, from the same random state, and checks that the measured
tensors are equal. Writes bench/results/rl_shared_blocks.json and prints a Markdown table. Target: the shared
pass takes at most 0.9 of the time per batch of rollouts (ratio of medians).
"""

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from hfrepro.fsutil import atomic_write_json  # noqa: E402
from hfrepro.report import md_table  # noqa: E402

TARGET = 0.9
FIELDS = ("responses", "logprobs", "ref_logprobs", "scores", "values", "hidden", "policy_hidden")


def trainer_for(run: Path, threads: int, out: Path):
    import yaml

    from hfrepro import runtime
    from hfrepro.lora import LoraArguments, lora_config
    from hfrepro.rlhf.models import load_frozen, load_policy, load_tokenizer
    from hfrepro.rlhf.ppo import PPOConfig, PPOTrainer
    from hfrepro.rlhf.prefs import encode_prompt

    cfg = yaml.safe_load((REPO / "recipes/configs/rlhf/default.yaml").read_text())
    runtime.setup(seed=0, threads=threads)
    tok = load_tokenizer(str(run / "sft"))
    args = runtime.make_training_args(
        PPOConfig, output_dir=str(out), algo="ppo", per_device_train_batch_size=cfg["rl_micro_batch_size"],
        gradient_accumulation_steps=cfg["rl_batch_size"] // cfg["rl_micro_batch_size"],
        total_episodes=cfg["rl_batch_size"], num_generations=cfg["num_generations"],
        local_rollout_forward_batch_size=cfg["rl_batch_size"], temperature=cfg["temperature"],
        response_length=cfg["max_new_tokens"], stop_token="eos", value_trainable_layers=cfg["value_trainable_layers"],
        save_strategy="no", seed=0, disable_tqdm=True)
    policy = load_policy(run / "sft", tok)
    lora = LoraArguments(lora_r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"], lora_dropout=cfg["lora_dropout"],
                         lora_target_modules=cfg["lora_target_modules"])
    capitals = ["Athens", "Berlin", "Cairo", "Dublin", "Hanoi", "Lima", "Madrid", "Oslo"]
    prompts = [encode_prompt(tok, [{"role": "user", "content": f"{c} is the capital of which country? One word."}])
               for c in capitals * (cfg["rl_batch_size"] // len(capitals))]
    return PPOTrainer(args=args, processing_class=tok, model=policy, train_dataset=prompts,
                      reward_model=load_frozen(run / "reward", tok, kind="scorer"),
                      peft_config=lora_config(policy, dataclasses.replace(lora, lora_layers=cfg["rl_lora_layers"])))


def main():
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, default=REPO / "runs/rlhf",
                    help="an `hfrepro rlhf` run folder with sft/ and reward/ (the default budget's)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("HFREPRO_THREADS", 0)) or 1)
    a = ap.parse_args()
    if not (a.run / "sft").is_dir() or not (a.run / "reward").is_dir():
        sys.exit(f"error: {a.run} has no sft/ and reward/ folders\n  fix: run `hfrepro rlhf --output_dir {a.run}` "
                 "first (or pass --run)")
    tr = trainer_for(a.run, a.threads, REPO / "bench/results/rl_shared_blocks-run")
    shared_depth = tr.shared
    batch = tr.prompt_batch(0)
    seconds: dict[str, list[float]] = {"shared": [], "separate": []}
    outputs = {}
    for _ in range(a.rounds):
        for side in ("separate", "shared"):
            tr.shared = shared_depth if side == "shared" else 0
            torch.manual_seed(1)
            t0 = time.perf_counter()
            outputs[side] = tr.rollout(batch)
            seconds[side].append(time.perf_counter() - t0)
    equal = all(torch.equal(getattr(outputs["shared"], f), getattr(outputs["separate"], f)) for f in FIELDS)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    ratio = med["shared"] / med["separate"]
    result = {"shared_blocks": shared_depth, "split": tr.split, "threads": a.threads, "rollouts": len(batch),
              "seconds": seconds, "median": med, "ratio": round(ratio, 3), "target": TARGET,
              "met": ratio <= TARGET, "equal": equal, "load_average": os.getloadavg()[0],
              "date": time.strftime("%Y-%m-%d")}
    atomic_write_json(REPO / "bench/results/rl_shared_blocks.json", result)
    rows = [{"side": k, "blocks run once": (shared_depth if k == "shared" else 0),
             "seconds per batch": " / ".join(f"{s:.2f}" for s in v), "median": med[k]} for k, v in seconds.items()]
    print(md_table(rows, digits=2))
    print(f"\nratio {ratio:.3f} (target <= {TARGET}: {'met' if result['met'] else 'NOT met'}); "
          f"measured tensors equal: {equal}")


if __name__ == "__main__":
    main()
