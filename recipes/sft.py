"""Supervised fine-tuning with TRL's SFTTrainer: full fine-tuning, head-only transfer learning, or LoRA.

Stage 7 of the road: a pretrained chat model (SmolLM2-135M-Instruct) adapted to new data, three ways.
`full` trains every parameter; `head` is transfer learning - the body frozen, only the output end (the untied
output layer + final norm) trained; `lora` trains low-rank adapters beside the frozen attention projections
(Hu et al. 2021, "LoRA"). The data is JSONL, prompt/completion or chat ("messages"), checked as `hfrepro
finetune prepare-data` checks it; the loss falls on the completion / the assistant turns only. With
--eval_task the fine-tuned model is then scored on a task's held-out rows by stage 6's evaluator: stage 7's
comparison runs this recipe three times (recipes/configs/sft/{head,lora,full}/) on the same rows and steps.

The run folder is the model's repository: weights (or the LoRA adapter), tokenizer and card at the top,
config.yaml, metrics.json, log.jsonl, status.json and output.log (the progress `hfrepro finetune follow`
shows) beside them. The same command again continues an unfinished run from its last checkpoint.

Usage:
    hfrepro sft                                                  # LoRA on the shipped dictionary chat example
    hfrepro sft --method full --learning_rate 3e-5 --output_dir runs/sft-full
    hfrepro sft --train_file data_prepared.jsonl --method head --learning_rate 1e-3
    hfrepro sft --method lora --merge --output_dir runs/sft-merged     # merged weights; the adapter in adapter/
    hfrepro sft --config recipes/configs/sft/lora/default.yaml --output_dir runs/sft-lora   # stage 7's LoRA run
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/sft.py --max_steps 4
    hfrepro sft --push_to_hub --hub_model_id you/smollm2-dictionary-lora          # share it (needs HF_TOKEN)
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from trl import SFTConfig, SFTTrainer

from hfrepro import runtime
from hfrepro.cards import write_model_card
from hfrepro.config import RunArguments, parse_args, resolved
from hfrepro.errors import UserError, run_main
from hfrepro.fewshot.tasks import load_task
from hfrepro.finetune import sft
from hfrepro.finetune.memory import PeakMemory
from hfrepro.finetune.training_data import task_accuracy, task_path, training_rows
from hfrepro.hub import hub_request, push_folder
from hfrepro.lora import LoraArguments, count_parameters, lora_config
from hfrepro.models import load_causal_lm, load_tokenizer, resolve


@dataclass
class ScriptArguments:
    model_name_or_path: str = field(default="smollm2-135m-instruct", metadata={
        "aliases": ["--model"], "help": "the pretrained model: embedded name, folder or Hub id"})
    train_file: str = field(default="dictionary", metadata={
        "help": "JSONL file (prompt/completion or messages), or a shipped set: dictionary | word_class"})
    validation_file: Optional[str] = field(default=None, metadata={"help": "JSONL file for eval_loss"})
    max_train_examples: int = field(default=0, metadata={"help": "train on the first N examples (0: all)"})
    method: str = field(default="lora", metadata={"help": "full | head (transfer learning) | lora"})
    merge: bool = field(default=False, metadata={"help": "lora: save merged weights (the adapter in adapter/)"})
    eval_task: Optional[str] = field(default=None, metadata={
        "help": "after training, score the model on this task's held-out rows (stage 6's evaluator, zero-shot): "
                "word_class, or a task YAML"})
    eval_limit: int = field(default=0, metadata={"help": "held-out rows scored (0: all)"})
    save_model: bool = field(default=True, metadata={"help": "save the trained weights in the run folder"})


def main(script_args: ScriptArguments, training_args: SFTConfig, lora_args: LoraArguments,
         run_args: RunArguments) -> dict:
    check(script_args)
    config = resolved(script_args, training_args, lora_args, run_args)
    push = hub_request(training_args, default_name="hfrepro-sft")       # fails now, not after training
    runtime.setup(seed=training_args.seed, threads=run_args.threads, precision=run_args.precision)
    runtime.cpu_sane(training_args)
    if script_args.method != "full":
        sft.no_activation_checkpointing(training_args)
    # Data: checked before the run folder is taken (a bad file is refused with nothing written).
    train_rows = training_rows(script_args.train_file, script_args.max_train_examples)
    valid_rows = training_rows(script_args.validation_file) if script_args.validation_file else None
    run = runtime.Run.begin(training_args.output_dir, config, overwrite=run_args.overwrite,
                            resume_from_checkpoint=training_args.resume_from_checkpoint, wait=run_args.wait)
    if run.finished:
        print(f"already trained with this config: {run.path}/metrics.json")
        return run.metrics()
    with run:                                   # the folder's lock, released however this ends
        log = sft.EventLog(run.path / "output.log")

        # Model: the pretrained model and its tokenizer (SmolLM2's pad token is its eos, <|im_end|>).
        path = resolve(script_args.model_name_or_path)
        tokenizer, model = load_tokenizer(path), load_causal_lm(path)
        tokenizer.padding_side = "right"
        shipped_template = tokenizer.chat_template
        train, kind = sft.as_dataset(train_rows)
        valid = sft.as_dataset(valid_rows)[0] if valid_rows else None
        train, valid, kind, assistant_only = sft.assistant_only(tokenizer, train, valid, kind, log)
        training_args.assistant_only_loss = assistant_only
        if valid is not None and training_args.eval_strategy == "no":
            training_args.eval_strategy = "epoch"

        # Method: what trains. head: untied output layer + final norm; lora: adapters (TRL wraps the model).
        head_info = sft.make_head_only(model) if script_args.method == "head" else {}
        peft_config = lora_config(model, lora_args) if script_args.method == "lora" else None

        # Train: TRL's SFTTrainer, loss on the completions / assistant turns.
        trainer = SFTTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=valid,
                             processing_class=tokenizer, peft_config=peft_config, callbacks=run.callbacks())
        flops_tok = announce(trainer, script_args, kind, log, run)
        with PeakMemory() as peak:                  # entering it frees memory first: not part of the timing
            t0, c0 = time.time(), time.process_time()
            result = trainer.train(resume_from_checkpoint=run.resume_from)
            seconds, cpu_seconds = time.time() - t0, time.process_time() - c0

        # Evaluate: loss on the validation file; accuracy on the task's held-out rows.
        metrics = {**train_metrics(trainer, result, seconds, cpu_seconds, peak, kind, flops_tok, run), **head_info,
                   "method": script_args.method, "model": script_args.model_name_or_path}
        if valid is not None:
            metrics["eval_loss"] = float(trainer.evaluate()["eval_loss"])
        if script_args.eval_task:
            metrics.update(heldout(trainer.model, tokenizer, script_args, training_args, run.path))

        # Results: the run folder is the model's repository.
        tokenizer.chat_template = shipped_template  # not the one marked for training
        if script_args.save_model:
            save_model(trainer, run.path, merge=script_args.merge)
            metrics["model_dir"] = str(run.path)
        metrics = run.finish(metrics)
        if run.is_main:
            if script_args.save_model:
                write_card(run.path, script_args, metrics, config)
            log(done_line(metrics))
            if push:
                print(f"pushed to {push.repo_id}: {push_folder(run.path, push)}")
    return metrics


def check(script_args: ScriptArguments) -> None:
    if script_args.method not in sft.METHODS:
        raise UserError(f"unknown method {script_args.method!r}", fix=f"use one of: {', '.join(sft.METHODS)}")
    if script_args.merge and script_args.method != "lora":
        raise UserError("--merge only applies to --method lora",
                        fix="drop --merge (full and head runs already save complete weights)")
    if script_args.eval_task:
        load_task(task_path(script_args.eval_task))     # a wrong task name fails now, not after training


def train_metrics(trainer, result, seconds, cpu_seconds, peak, kind, flops_tok, run) -> dict:
    """What the training cost and reached: parameters, losses, tokens, time, memory, FLOPs."""
    state, args = trainer.state, trainer.args
    trainable, total = count_parameters(trainer.model)
    tokens = int(state.num_input_tokens_seen)
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    return {
        "format": kind, "examples": len(trainer.train_dataset), "trainable_params": trainable,
        "total_params": total, "trainable_pct": 100.0 * trainable / total, "train_loss": float(result.training_loss),
        "first_loss": float(losses[0]) if losses else None, "last_loss": float(losses[-1]) if losses else None,
        "steps": int(state.global_step), "epochs": float(state.epoch or 0), "tokens_seen": tokens,
        "train_seconds": round(seconds, 2), "train_cpu_seconds": round(cpu_seconds, 2),
        "tokens_per_second": round(tokens / max(seconds, 1e-9), 1),
        "peak_memory_bytes": int(peak.peak_bytes), "peak_memory_kind": peak.kind,
        "flops_per_token": flops_tok, "flops_estimate": flops_tok * tokens,
        "trainer_total_flos": float(state.total_flos), "learning_rate": float(args.learning_rate),
        "assistant_only_loss": bool(args.assistant_only_loss), "resumed_from": run.resume_from,
        "world_size": int(args.world_size)}


def announce(trainer, script_args, kind: str, log, run) -> float:
    """Log what is about to train and its estimated cost; add the progress log; returns FLOPs per token."""
    args, method = trainer.args, script_args.method
    trainable, total = count_parameters(trainer.model)
    flops_tok = sft.flops_per_token(method, total, trainable, trainable if method == "head" else 0)
    trainer.add_callback(sft.progress_callback(log, flops_tok, every=max(1, int(args.logging_steps) * 10)))
    n = len(trainer.train_dataset)
    log(f"Fine-tune {run.path.name}: method={method} model={script_args.model_name_or_path} examples={n:,} "
        f"({kind}) trainable={trainable:,}/{total:,} ({100 * trainable / total:.2f}%)")
    tokens = sft.count_tokens(trainer.train_dataset, trainer.processing_class, kind, args.max_length)
    log(sft.cost_line(args, n, tokens, flops_tok))
    if run.resume_from:
        log(f"Resuming from {run.resume_from}")
    return flops_tok


def done_line(m: dict) -> str:
    held = f"; held-out accuracy {m['heldout_accuracy']:.3f}" if "heldout_accuracy" in m else ""
    saved = f"; model saved to {m['model_dir']}" if "model_dir" in m else ""
    return (f"Fine-tune succeeded: {m['steps']} steps, {m['tokens_seen']:,} tokens, train loss {m['train_loss']:.4f}, "
            f"{m['train_seconds']:.0f}s{held}{saved}")


def heldout(model, tokenizer, script_args, training_args, folder: Path) -> dict:
    """Accuracy on the task's held-out rows, asked as the model was trained (no instruction, no examples);
    every prompt and answer goes to heldout_samples.jsonl."""
    r = task_accuracy(model, tokenizer, script_args.eval_task, limit=script_args.eval_limit,
                      seed=1234 + training_args.seed, batch_size=training_args.per_device_eval_batch_size)
    if runtime.is_main_process():
        (folder / "heldout_samples.jsonl").write_text(
            "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in r["samples"]), encoding="utf-8")
    return {"eval_task": script_args.eval_task, "heldout_accuracy": r["accuracy"], "heldout_n": r["n"],
            "heldout_seconds": r["seconds"], "heldout_cpu_seconds": r["cpu_seconds"]}


def save_model(trainer, folder: Path, merge: bool) -> None:
    """trainer.save_model() to the run folder (LoRA: the adapter); with `merge`, the merged weights there and the
    adapter in adapter/."""
    if not merge:
        trainer.save_model()
        return
    trainer.save_model(str(folder / "adapter"))
    if trainer.accelerator.is_main_process:
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        merged.save_pretrained(folder, safe_serialization=True)
        trainer.processing_class.save_pretrained(folder)
    trainer.accelerator.wait_for_everyone()


def write_card(folder: Path, script_args: ScriptArguments, metrics: dict, config: dict) -> None:
    method = script_args.method
    what = {"full": "full fine-tuning (every parameter)", "lora": "LoRA adapters (PEFT)",
            "head": "head-only transfer learning (untied output layer + final norm; body frozen)"}[method]
    adapter = method == "lora" and not script_args.merge
    if method == "lora" and script_args.merge:
        what += ", merged into the base weights"
    keys = ("method", "trainable_params", "total_params", "trainable_pct", "train_loss", "eval_loss",
            "heldout_accuracy", "heldout_n", "steps", "epochs", "tokens_seen", "train_seconds", "flops_estimate")
    base = script_args.model_name_or_path
    write_model_card(
        folder, title=f"{Path(base).name} fine-tuned ({method})", base_model=base, license="apache-2.0",
        datasets=[Path(script_args.train_file).name], pipeline_tag="text-generation",
        tags=["sft", "trl", method, *(["peft", "lora"] if method == "lora" else [])],
        library_name="peft" if adapter else "transformers",
        description=(f"Supervised fine-tuning of `{base}` with TRL's `SFTTrainer` by hfrepro's `recipes/sft.py` "
                     f"(stage 7): {what}. {metrics['trainable_params']:,} of {metrics['total_params']:,} "
                     f"parameters trainable ({metrics['trainable_pct']:.2f}%)."),
        metrics={k: metrics[k] for k in keys if metrics.get(k) is not None}, config=config,
        # model-index: the task's held-out (test) accuracy; else the loss on the validation rows
        eval_metrics=[k for k in ("heldout_accuracy",) if k in metrics] or [k for k in ("eval_loss",) if k in metrics],
        eval_dataset=script_args.eval_task, eval_split="test" if "heldout_accuracy" in metrics else "validation",
        command="hfrepro sft --config config.yaml   # config.yaml: this run's config",
        usage="Chat with it: `hfrepro chat --model <this folder>`.",
        limits="A small demonstration fine-tune; evaluate it on your own task before relying on it.")


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, SFTConfig, LoraArguments, RunArguments), recipe="sft", argv=argv))


if __name__ == "__main__":
    run_main(cli)
