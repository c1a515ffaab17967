"""Smoke test of a setup: a tiny GPT-2 trained for a few steps through hfrepro's shared plumbing.

It shows the recipe convention every stage follows, and checks that your accelerate config really starts
the processes it says (STACK.md: `distributed_type: MULTI_CPU` silently starts one).

Usage:
    python recipes/smoke.py                                   # defaults from recipes/configs/smoke.yaml
    python recipes/smoke.py --max_steps 5 --output_dir runs/smoke-5
    accelerate launch --config_file accelerate_config.yaml recipes/smoke.py
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/smoke.py   # 2 processes on CPU
    python recipes/smoke.py --push_to_hub --hub_model_id you/smoke-gpt2     # share it (needs HF_TOKEN)
    hfrepro smoke --help
"""

from dataclasses import dataclass, field

from hfrepro.config import parse_args, resolved
from hfrepro.errors import run_main
from hfrepro.hub import HubArguments, hub_request, push_folder


@dataclass
class SmokeArguments:
    dataset: str = field(default="shakespeare", metadata={"help": "embedded dataset name, or a .txt/.jsonl file"})
    max_examples: int = field(default=256, metadata={"help": "training lines used"})
    vocab_size: int = field(default=512, metadata={"help": "BPE vocabulary trained on those lines"})
    block_size: int = field(default=64, metadata={"help": "tokens per training example"})
    output_dir: str = field(default="runs/smoke", metadata={"help": "run folder"})
    max_steps: int = field(default=10, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=8, metadata={"help": "per-device batch size"})
    learning_rate: float = field(default=1e-3)
    seed: int = field(default=0)
    threads: int = field(default=0, metadata={"help": "torch threads per process (0: cores / processes)"})
    overwrite: bool = field(default=False, metadata={"help": "start afresh if output_dir holds another run"})


def main():
    args, hub = parse_args((SmokeArguments, HubArguments), config="smoke")
    req = hub_request(args, hub, default_name="hfrepro-smoke")  # fails here, before training, if it cannot push
    from hfrepro import smoke
    metrics = smoke.run(args, config=resolved(args, hub))
    if metrics:
        print(f"world size {metrics['world_size']} on {metrics['device']}: "
              f"loss {metrics['first_loss']:.3f} -> {metrics['final_loss']:.3f}, "
              f"{metrics['tokens_seen']:,} tokens -> {args.output_dir}")
        if req:
            print(f"pushed to {req.repo_id}: {push_folder(args.output_dir, req)}")


if __name__ == "__main__":
    run_main(main)
