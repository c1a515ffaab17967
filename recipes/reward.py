"""Reward model from preference pairs with TRL's RewardTrainer; prints held-out pairwise accuracy.

Pairs: the embedded one-word-answer task built from questions-words (data_cards/qw-prefs.md), or your own
file in TRL's preference format (prompt/chosen/rejected, strings or message lists).

Usage:
    python recipes/reward.py                                  # defaults: recipes/configs/reward.yaml
    python recipes/reward.py --model runs/rlhf/sft/model --output_dir runs/reward-sft
    python recipes/reward.py --dataset my_prefs.jsonl --layers 0 --trainable_layers 0
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/reward.py
    hfrepro reward --help
"""

from trl import RewardConfig

from hfrepro.config import parse_args
from hfrepro.errors import run_main
from hfrepro.hub import hub_request, push_folder
from hfrepro.rlhf.reward import RewardScriptArguments, run_reward_recipe


def main():
    script, config = parse_args((RewardScriptArguments, RewardConfig), config="reward")
    req = hub_request(script, config)
    run_dir = config.output_dir
    metrics = run_reward_recipe(script, config)
    if metrics:
        by = metrics.get("rm_test_accuracy_by_kind") or {}
        print(f"held-out pairwise accuracy {metrics['rm_test_accuracy']:.3f} on {metrics['rm_test_pairs']} pairs"
              + (" (" + ", ".join(f"{k} {v:.2f}" for k, v in by.items()) + ")" if by else "")
              + f" -> {run_dir}/model")
        if req:
            print("pushed:", push_folder(f"{run_dir}/model", req))


if __name__ == "__main__":
    run_main(main)
