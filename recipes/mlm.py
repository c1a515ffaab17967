"""A BERT masked language model: pretrained from scratch, or MLM continued from the embedded MiniLM.

BertForMaskedLM + DataCollatorForLanguageModeling (15% of tokens: 80% <mask>, 10% random, 10% kept) with
the transformers Trainer. Reports masked-token accuracy on held-out documents (fixed seed) next to the
always-the-most-frequent-token baseline. model/ opens with pipeline("fill-mask").

Usage:
    python recipes/mlm.py                                   # defaults: recipes/configs/mlm.yaml
    python recipes/mlm.py --init_from minilm-l6 --learning_rate 1e-4 --output_dir runs/mlm-minilm
    accelerate launch --config_file accelerate_config.yaml recipes/mlm.py
    hfrepro fill-mask --model runs/mlm --text "Good <mask>, my lord."
"""

from transformers import TrainingArguments

from hfrepro.config import parse_args, resolved
from hfrepro.errors import run_main
from hfrepro.hub import hub_request, push_folder
from hfrepro.lm.mlm import MLMArguments


def main():
    args, targs = parse_args((MLMArguments, TrainingArguments), config="mlm")
    req = hub_request(args, targs, default_name="hfrepro-mlm")
    from hfrepro.lm import mlm
    metrics = mlm.train(args, targs, config=resolved(args, targs))
    if metrics:
        print(f"{metrics['model']} ({metrics['parameters']:,} parameters, {metrics['steps']} steps): masked-token "
              f"accuracy {metrics['masked_accuracy']:.3f} on {metrics['masked_tokens']:,} held-out tokens "
              f"(most-frequent-token baseline {metrics['majority_baseline_accuracy']:.3f}) -> {metrics['model_dir']}")
        if req:
            from pathlib import Path
            print(f"pushed to {req.repo_id}: {push_folder(Path(metrics['model_dir']).parent, req)}")


if __name__ == "__main__":
    run_main(main)
