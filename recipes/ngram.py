"""Word n-gram language models: unigram, add-k bigram, interpolated Kneser-Ney; scored in bits per character.

Counts the training split (all of it, in seconds), chooses the bigram's k on validation text, saves every
model folder (counts as safetensors, vocabulary, the spelling model for unknown words) and scores held-out
test documents. Re-running with the same arguments reuses the folders already written.

Usage:
    python recipes/ngram.py                                   # defaults: recipes/configs/ngram.yaml
    python recipes/ngram.py --kn_orders 2 3 4 --min_count 1 --output_dir runs/ngram-4
    accelerate launch --config_file accelerate_config.yaml recipes/ngram.py
    hfrepro ngram --help
"""

from hfrepro.config import parse_args, resolved
from hfrepro.errors import run_main
from hfrepro.hub import HubArguments, hub_request, push_folder
from hfrepro.lm.ngram import NgramArguments


def main():
    args, hub = parse_args((NgramArguments, HubArguments), config="ngram")
    req = hub_request(args, hub, default_name="hfrepro-kneser-ney")
    from hfrepro.lm import ngram
    metrics = ngram.run(args, config=resolved(args))
    if metrics:
        print(metrics["table"])
        print(f"-> {args.output_dir}/models/")
        if req:  # the highest-order Kneser-Ney model
            from pathlib import Path
            print(f"pushed to {req.repo_id}: "
                  f"{push_folder(Path(args.output_dir) / 'models' / f'kn{max(args.kn_orders)}', req)}")


if __name__ == "__main__":
    run_main(main)
