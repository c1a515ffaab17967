"""Smoke test of a setup: a tiny GPT-2 trained for a few steps, saved, carded and (optionally) pushed.

It is the shape every recipe has: arguments -> data -> model -> the library's trainer -> train -> evaluate ->
results, card, push. It also checks that your accelerate config really starts the processes it says
(STACK.md: `distributed_type: MULTI_CPU` silently starts one): metrics.json records the world size seen.

Usage:
    python recipes/smoke.py                                  # recipes/configs/smoke/default.yaml
    python recipes/smoke.py --max_steps 5 --output_dir runs/smoke-5
    hfrepro smoke --accelerate_config cpu_2proc              # 2 processes on a CPU-only machine
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/smoke.py
    python recipes/smoke.py --push_to_hub --hub_model_id you/smoke-gpt2     # share it (needs HF_TOKEN)
"""

from dataclasses import dataclass, field

import torch
from datasets import Dataset
from transformers import DataCollatorForLanguageModeling, GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from hfrepro import assets, data, runtime
from hfrepro.cards import write_model_card
from hfrepro.config import RunArguments, parse_args, resolved
from hfrepro.errors import run_main
from hfrepro.hub import hub_request, push_folder
from hfrepro.tokenizer import train_bpe


@dataclass
class ScriptArguments:
    dataset: str = field(default="shakespeare", metadata={"help": "embedded dataset name, or a .txt/.jsonl file"})
    max_examples: int = field(default=256, metadata={"help": "training lines used"})
    vocab_size: int = field(default=512, metadata={"help": "BPE vocabulary trained on those lines"})
    block_size: int = field(default=64, metadata={"help": "tokens per training example"})
    n_layer: int = field(default=2, metadata={"help": "transformer blocks"})
    n_embd: int = field(default=64, metadata={"help": "model width"})


def main(script_args: ScriptArguments, training_args: TrainingArguments, run_args: RunArguments) -> dict:
    config = resolved(script_args, training_args, run_args)
    push = hub_request(training_args, default_name="hfrepro-smoke")  # fails now, not after training
    threads = runtime.setup(seed=training_args.seed, threads=run_args.threads, precision=run_args.precision)
    runtime.cpu_sane(training_args)
    run = runtime.Run.begin(training_args.output_dir, config, overwrite=run_args.overwrite,
                            resume_from_checkpoint=training_args.resume_from_checkpoint, wait=run_args.wait)
    if run.finished:
        print(f"already trained with this config: {run.path}/metrics.json")
        return run.metrics()

    # Data: lines of text -> a byte-level BPE trained on them -> blocks of `block_size` token ids.
    lines = data.texts(script_args.dataset, split="train")[: script_args.max_examples]
    tokenizer = train_bpe(lines, vocab_size=script_args.vocab_size, min_frequency=1)
    ids = tokenizer("\n".join(lines))["input_ids"]
    n, b = len(ids) // script_args.block_size, script_args.block_size
    train = Dataset.from_dict({"input_ids": [ids[i * b:(i + 1) * b] for i in range(n)]})

    # Model: a GPT-2 of the given size, from scratch.
    model = GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tokenizer), n_positions=b, n_embd=script_args.n_embd, n_layer=script_args.n_layer,
        n_head=2, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))

    # Train: the transformers Trainer, next-token prediction.
    trainer = Trainer(model=model, args=training_args, train_dataset=train, processing_class=tokenizer,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False), callbacks=run.callbacks())
    result = trainer.train(resume_from_checkpoint=run.resume_from)

    # Results: the run folder is the model's Hub repository.
    trainer.save_model()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    acc = trainer.accelerator
    metrics = run.finish({
        "world_size": acc.num_processes, "device": str(acc.device), "threads_per_process": threads,
        "distributed_type": str(acc.distributed_type), "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None, "train_loss": result.training_loss,
        "steps": trainer.state.global_step, "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "train_seconds": round(result.metrics["train_runtime"], 2), "torch": torch.__version__})
    if run.is_main:
        write_card(run.path, script_args, metrics, config)
        print(f"world size {metrics['world_size']} on {metrics['device']}: loss {metrics['first_loss']:.3f} -> "
              f"{metrics['final_loss']:.3f}, {metrics['tokens_seen']:,} tokens -> {run.path}")
        if push:
            print(f"pushed to {push.repo_id}: {push_folder(run.path, push)}")
    return metrics


def write_card(folder, script_args: ScriptArguments, metrics: dict, config: dict) -> None:
    embedded = script_args.dataset in assets.ASSETS
    write_model_card(
        folder, title="hfrepro smoke test: a tiny GPT-2", license="apache-2.0",
        datasets=[script_args.dataset] if embedded else [],
        language=list(assets.ASSETS[script_args.dataset].language) if embedded else [],
        pipeline_tag="text-generation", tags=["smoke-test", "gpt2"],
        description=(f"A {script_args.n_layer}-layer GPT-2 ({script_args.n_embd}-dim) with a "
                     f"{script_args.vocab_size}-token byte-level BPE tokenizer, trained from scratch for "
                     f"{metrics['steps']} steps on up to {script_args.max_examples} lines of `{script_args.dataset}` "
                     f"by `recipes/smoke.py`, on {metrics['world_size']} process(es)."),
        metrics=metrics, eval_metrics=["final_loss", "train_loss"], eval_split="train",
        config=config, command="hfrepro smoke --config config.yaml   # config.yaml: this run's config",
        usage="Checking that a setup trains, saves, loads and shares a model end to end. Not for generating text.",
        limits="A few optimizer steps on a few hundred lines: its text is noise. The losses are training losses "
               "on the lines it was trained on, not a held-out evaluation.")


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, TrainingArguments, RunArguments), recipe="smoke", argv=argv))


if __name__ == "__main__":
    run_main(cli)
