"""The InstructGPT pipeline in one run: SFT -> reward model -> PPO (or RLOO, GRPO, DPO), evaluated on held-out
prompts against the SFT policy, with one comparison table.

Default task: one-word answers to questions built from the questions-words analogy pairs ("What is the capital
of Greece?" -> "Athens"); the reward model learns from chosen/rejected pairs, and the independent check is
exact-match accuracy against the gold answers (data_cards/qw-prefs.md).

Usage:
    python recipes/rlhf.py                                   # defaults: recipes/configs/rlhf.yaml, PPO
    python recipes/rlhf.py --algo all                        # PPO, RLOO, GRPO, DPO on the same SFT + reward model
    python recipes/rlhf.py --algo rloo --output_dir runs/rlhf    # adds RLOO to an earlier run (reuses SFT + RM)
    python recipes/rlhf.py --dataset my_prefs.jsonl          # your pairs: TRL prompt/chosen/rejected format
    accelerate launch recipes/rlhf.py
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/rlhf.py   # 2 CPU processes
    hfrepro rlhf --help

Re-running the same command skips finished stages and resumes an interrupted one from its last checkpoint.
"""

from hfrepro.config import parse_args, resolved
from hfrepro.errors import run_main
from hfrepro.hub import HubArguments, hub_request, push_folder
from hfrepro.rlhf.pipeline import RLHFArguments


def main():
    args, hub = parse_args((RLHFArguments, HubArguments), config="rlhf")
    req = hub_request(args, hub)
    from hfrepro.rlhf.pipeline import run_pipeline
    summary = run_pipeline(args)
    from hfrepro.rlhf.models import runtime_state
    if runtime_state().is_main_process:
        from hfrepro.report import md_table
        print(md_table(summary["comparison"]))
        print(f"results: {args.output_dir}/comparison.md, curves: {summary.get('curves_png')}")
        if req:
            algo = args.algos()[-1]
            print("pushed:", push_folder(f"{args.output_dir}/{algo}/model", req))


if __name__ == "__main__":
    run_main(main)
