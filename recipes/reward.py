"""Reward model from preference pairs with TRL's RewardTrainer; held-out pairwise accuracy (InstructGPT step 2).

A one-output `AutoModelForSequenceClassification` (the first `layers` blocks of the model, the top
`trainable_layers` trained) learns r(prompt, response) from chosen/rejected pairs with the Bradley-Terry loss
-log sigmoid(r(chosen) - r(rejected)); the score is read at the EOS token of the response, where PPO reads it.
Pairs: the embedded one-word-answer task built from questions-words (data_cards/qw-prefs.md), or your own
file in TRL's preference format (prompt/chosen/rejected, strings or message lists).

Usage:
    hfrepro reward                                           # recipes/configs/reward/default.yaml
    hfrepro reward --model runs/rlhf/sft --output_dir runs/reward-sft
    hfrepro reward --dataset my_prefs.jsonl --layers 0 --trainable_layers 0
    python recipes/reward.py --budget tiny                   # the same code
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/reward.py

The whole InstructGPT order (SFT first, the reward model initialised from it) is recipes/rlhf.py.
"""

from dataclasses import dataclass, field

import torch
from transformers import AutoModelForSequenceClassification
from trl import RewardConfig, RewardTrainer

from hfrepro import runtime
from hfrepro.config import RunArguments, parse_args, resolved
from hfrepro.errors import run_main
from hfrepro.hub import hub_request, push_folder
from hfrepro.models import resolve
from hfrepro.rlhf.card import write_card
from hfrepro.rlhf.models import freeze_below, layer_kwargs, load_tokenizer, sync_pad
from hfrepro.rlhf.prefs import held_out, load_preferences, tokenize_pairs, without_prompt_len
from hfrepro.rlhf.reward import describe, reward_metrics


@dataclass
class ScriptArguments:
    model_name_or_path: str = field(default="smollm2-135m-instruct", metadata={
        "aliases": ["--model"],
        "help": "model the reward model starts from (embedded name, folder such as runs/rlhf/sft, or Hub id)"})
    dataset: str = field(default="questions-words", metadata={
        "help": "questions-words (embedded task) or a TRL preference file: prompt/chosen/rejected per row"})
    pairs_per_prompt: int = field(default=2, metadata={"help": "rejected answers per prompt (embedded task)"})
    max_train_pairs: int = field(default=0, metadata={"help": "use at most this many training pairs (0: all)"})
    layers: int = field(default=16, metadata={"help": "transformer blocks kept (0: all)"})
    trainable_layers: int = field(default=4, metadata={"help": "top blocks trained (0: all)"})


def main(script_args: ScriptArguments, training_args: RewardConfig, run_args: RunArguments) -> dict:
    config = resolved(script_args, training_args, run_args)
    push = hub_request(training_args, default_name="hfrepro-reward")  # fails now, not after training
    runtime.setup(seed=training_args.seed, threads=run_args.threads, precision=run_args.precision)
    runtime.cpu_sane(training_args)
    with runtime.Run.begin(training_args.output_dir, config, overwrite=run_args.overwrite,
                           resume_from_checkpoint=training_args.resume_from_checkpoint, wait=run_args.wait) as run:
        if run.finished:
            print(f"already trained with this config: {run.path}/metrics.json")
            return run.metrics()

        # Data: preference pairs, tokenised as prompt + response + EOS (the score is read at that EOS).
        tok = load_tokenizer(script_args.model_name_or_path)
        data = load_preferences(script_args.dataset, seed=training_args.seed,
                                pairs_per_prompt=script_args.pairs_per_prompt)
        train = data["train"].shuffle(seed=training_args.seed)
        if script_args.max_train_pairs:
            train = train.select(range(min(script_args.max_train_pairs, len(train))))
        train_ids, test_ids = tokenize_pairs(train, tok), tokenize_pairs(held_out(data), tok)
        eval_ids = tokenize_pairs(data["validation"], tok) if "validation" in data else None

        # Model: one output (the reward), the pad id the tokenizer's (not EOS), the lower blocks frozen.
        path = resolve(script_args.model_name_or_path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=torch.float32, **layer_kwargs(path, script_args.layers))
        sync_pad(model, tok)
        freeze_below(model, script_args.trainable_layers)

        # Train: TRL's RewardTrainer (Bradley-Terry loss on the pairs).
        eval_pairs = without_prompt_len(eval_ids) if eval_ids is not None else None
        trainer = RewardTrainer(model=model, args=training_args, train_dataset=without_prompt_len(train_ids),
                                eval_dataset=eval_pairs, processing_class=tok, callbacks=run.callbacks())
        result = trainer.train(resume_from_checkpoint=run.resume_from)

        # Results: the run folder is the reward model's Hub repository.
        trainer.save_model()
        metrics = run.finish(reward_metrics(trainer, result, tok, train_ids, test_ids, run.path))
        if run.is_main:
            write_card(run.path, "reward", metrics, config, path, "hfrepro reward --config config.yaml")
            print(f"{describe(metrics)} -> {run.path}")
            if push:
                print(f"pushed to {push.repo_id}: {push_folder(run.path, push)}")
    return metrics


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, RewardConfig, RunArguments), recipe="reward", argv=argv))


if __name__ == "__main__":
    run_main(cli)
