"""An LSTM language model in plain torch, trained by a small accelerate loop (there is no Trainer for it).

Same tokenizer recipe, same training blocks and same held-out scoring as recipes/clm.py, so the LSTM and
the GPT differ only in the network. Checkpoints every --save_steps; killed, the same command resumes
with the very batches it would have seen.

Usage:
    python recipes/lstm.py                                  # defaults: recipes/configs/lstm.yaml
    python recipes/lstm.py --d_model 512 --n_layers 2 --max_steps 3000 --output_dir runs/lstm-big
    accelerate launch --config_file accelerate_config.yaml recipes/lstm.py
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/lstm.py --output_dir runs/lstm-2p
"""

from hfrepro.config import parse_args, resolved
from hfrepro.errors import run_main
from hfrepro.hub import HubArguments, hub_request, push_folder
from hfrepro.lm.lstm import LSTMArguments


def main():
    args, hub = parse_args((LSTMArguments, HubArguments), config="lstm")
    req = hub_request(args, hub, default_name="hfrepro-lstm")
    from hfrepro.lm import lstm
    metrics = lstm.train(args, config=resolved(args))
    if metrics:
        print(f"LSTM ({metrics['parameters']:,} parameters, {metrics['steps']} steps, {metrics['tokens_seen']:,} "
              f"tokens): held-out {metrics['test_bits_per_character']:.3f} bits/char, token perplexity "
              f"{metrics['test_perplexity']:.1f} -> {metrics['model_dir']}")
        if req:
            from pathlib import Path
            print(f"pushed to {req.repo_id}: {push_folder(Path(metrics['model_dir']).parent, req)}")


if __name__ == "__main__":
    run_main(main)
