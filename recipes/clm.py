"""Pretrain a GPT-2-architecture causal LM from scratch with the transformers Trainer.

A byte-level BPE tokenizer is trained on the training split, the text is cut into blocks (each document
starts with <s> and ends with its newline), GPT2LMHeadModel learns next-token prediction, and the run
folder's model/ opens with pipeline("text-generation"). Bits per character on held-out documents make it
comparable with the n-gram and LSTM models. Killed? Run the same command again: it resumes.

Usage:
    python recipes/clm.py                                   # defaults: recipes/configs/clm.yaml
    python recipes/clm.py --max_steps 3000 --n_layer 6 --n_embd 256 --output_dir runs/clm-big
    accelerate launch --config_file accelerate_config.yaml recipes/clm.py
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/clm.py --output_dir runs/clm-2p
    hfrepro generate --model runs/clm --prompt "ROMEO:" --temperature 0.8
"""

from transformers import TrainingArguments

from hfrepro.config import parse_args, resolved
from hfrepro.errors import run_main
from hfrepro.hub import hub_request, push_folder
from hfrepro.lm.clm import CLMArguments


def main():
    args, targs = parse_args((CLMArguments, TrainingArguments), config="clm")
    req = hub_request(args, targs, default_name="hfrepro-clm")
    from hfrepro.lm import clm
    metrics = clm.train(args, targs, config=resolved(args, targs))
    if metrics:
        print(f"GPT ({metrics['parameters']:,} parameters, {metrics['steps']} steps, {metrics['tokens_seen']:,} "
              f"tokens): held-out {metrics['test_bits_per_character']:.3f} bits/char, token perplexity "
              f"{metrics['test_perplexity']:.1f} -> {metrics['model_dir']}")
        if req:
            from pathlib import Path
            print(f"pushed to {req.repo_id}: {push_folder(Path(metrics['model_dir']).parent, req)}")


if __name__ == "__main__":
    run_main(main)
