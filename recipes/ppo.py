"""PPO against a trained reward model with TRL's PPOTrainer (trl.experimental.ppo, trl 1.12).

Policy (LoRA) + a separate frozen reference + a value model (initialised from the reward model) + the reward
model. Per-step reward, KL, entropy, clip fraction and value loss go to <output_dir>/log.jsonl, the rollouts of
every step to samples.jsonl; the policy is compared with its starting point on held-out prompts at the end.

Usage:
    python recipes/reward.py && python recipes/ppo.py       # defaults: recipes/configs/{reward,ppo}.yaml
    python recipes/ppo.py --sft_model_path runs/rlhf/sft/model --reward_model_path runs/rlhf/reward/model
    python recipes/ppo.py --total_episodes 256 --kl_coef 0.1
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/ppo.py
    hfrepro ppo --help

The whole InstructGPT order (SFT first) is recipes/rlhf.py.
"""

import os

from hfrepro.config import parse_args
from hfrepro.errors import run_main
from hfrepro.hub import hub_request, push_folder

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
from trl.experimental.ppo import PPOConfig  # noqa: E402

from hfrepro.rlhf.ppo import PPOScriptArguments, run_ppo_recipe  # noqa: E402


def main():
    script, config = parse_args((PPOScriptArguments, PPOConfig), config="ppo")
    req = hub_request(script, config)
    run_dir = config.output_dir
    m = run_ppo_recipe(script, config)
    if m:
        ev = m.get("eval") or {}
        print(f"{m['updates']} PPO updates in {m['train_seconds']:.0f}s ({m['generate_share']:.0%} generating)"
              + (f"; held-out reward {m['eval_reference']['reward']:.3f} -> {ev['reward']:.3f}, KL {ev['kl']:.3f}, "
                 f"win-rate {ev['win_rate']:.2f}" if ev else "") + f" -> {run_dir}/model")
        if req:
            print("pushed:", push_folder(f"{run_dir}/model", req))


if __name__ == "__main__":
    run_main(main)
