"""Supervised fine-tuning with TRL's SFTTrainer: full fine-tuning, head-only (transfer learning) or LoRA.

The data is prompt/completion or chat ("messages") JSONL; the loss falls on the completion / assistant turns.
Writes output_dir/{config.yaml, metrics.json, log.jsonl, output.log, checkpoints/, model/}; model/ loads with
plain transformers (full, head, merged LoRA) or peft (LoRA adapter). Re-running resumes from the last checkpoint.

Usage:
    python recipes/sft.py                                                # LoRA on the shipped dictionary example
    python recipes/sft.py --method full --learning_rate 3e-5 --output_dir runs/sft-full
    python recipes/sft.py --train_file data_prepared.jsonl --method head --learning_rate 3e-4
    python recipes/sft.py --method lora --merge true                     # merged weights in model/
    accelerate launch --config_file accelerate_config.yaml recipes/sft.py
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/sft.py --max_steps 4
    hfrepro sft --help                                                    # the same script
"""

from dataclasses import dataclass, field

from trl import SFTConfig

from hfrepro.config import parse_args, resolved
from hfrepro.errors import run_main


@dataclass
class SFTScriptArguments:
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "base model: name, folder or Hub id"})
    train_file: str = field(default="dictionary",
                            metadata={"help": "JSONL file, or 'dictionary' (shipped chat example) / 'word_class'"})
    validation_file: str = field(default=None, metadata={"help": "optional JSONL file for eval_loss"})
    method: str = field(default="lora", metadata={"help": "full | head | lora"})
    lora_r: int = field(default=8)
    lora_alpha: int = field(default=16)
    lora_dropout: float = field(default=0.05)
    lora_target_modules: str = field(default="attention", metadata={"help": "attention | all-linear | a,b,c"})
    merge: bool = field(default=False, metadata={"help": "LoRA: write merged weights to model/ (adapter in adapter/)"})
    threads: int = field(default=0, metadata={"help": "torch threads per process (0: cores / processes)"})
    overwrite: bool = field(default=False, metadata={"help": "start afresh if output_dir holds another run"})


def main():
    args, cfg = parse_args((SFTScriptArguments, SFTConfig), config="sft")
    from hfrepro.finetune.recipe import train
    from hfrepro.hub import hub_request, push_folder

    req = hub_request(args, cfg)
    m = train(args, cfg, config=resolved(args, cfg))
    if m.get("model_dir"):
        print(f"{m['method']}: {m['trainable_params']:,} trainable parameters ({m['trainable_pct']:.2f}%), "
              f"{m['steps']} steps, {m['tokens_seen']:,} tokens in {m['train_seconds']:.0f}s "
              f"({m['tokens_per_second']:.0f} tokens/s), train loss {m['train_loss']:.3f} -> {m['model_dir']}")
        if req:
            print(f"pushed: {push_folder(m['model_dir'], req)}")


if __name__ == "__main__":
    run_main(main)
