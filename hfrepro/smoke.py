"""The smoke recipe's logic: tiny GPT-2, Trainer, shared plumbing, world size recorded in metrics.json."""

from __future__ import annotations

import time


def run(args, config: dict) -> dict | None:
    import torch
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, GPT2Config, GPT2LMHeadModel, Trainer

    from hfrepro import data
    from hfrepro.tokenizer import train_bpe
    from hfrepro.training import RunDir, callbacks, make_training_args, setup_runtime

    threads = setup_runtime(seed=args.seed, threads=args.threads)
    run_dir = RunDir(args.output_dir)
    run_dir.start(config, overwrite=args.overwrite)

    lines = data.texts(args.dataset, split="train")[: args.max_examples]
    tok = train_bpe(lines, vocab_size=args.vocab_size, min_frequency=1)
    ids = tok("\n".join(lines))["input_ids"]
    n = len(ids) // args.block_size
    blocks = [ids[i * args.block_size:(i + 1) * args.block_size] for i in range(n)]
    train = Dataset.from_dict({"input_ids": blocks})

    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=args.block_size, n_embd=64, n_layer=2,
                                       n_head=2, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                       pad_token_id=tok.pad_token_id))
    targs = make_training_args(output_dir=str(run_dir.checkpoints), max_steps=args.max_steps,
                               per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
                               logging_steps=1, save_steps=max(1, args.max_steps // 2), seed=args.seed,
                               disable_tqdm=True)
    trainer = Trainer(model=model, args=targs, train_dataset=train, processing_class=tok,
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False), callbacks=callbacks(run_dir))
    t0 = time.time()
    out = trainer.train(resume_from_checkpoint=run_dir.last_checkpoint())
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    acc = trainer.accelerator
    if not acc.is_main_process:
        return None
    acc.unwrap_model(trainer.model).save_pretrained(run_dir.model_dir, safe_serialization=True)
    tok.save_pretrained(run_dir.model_dir)
    metrics = run_dir.write_metrics({
        "world_size": acc.num_processes, "device": str(acc.device), "threads_per_process": threads,
        "distributed_type": str(acc.distributed_type), "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None, "train_loss": out.training_loss,
        "steps": trainer.state.global_step, "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "train_seconds": round(time.time() - t0, 2), "torch": torch.__version__,
    })
    write_card(run_dir.model_dir, args, metrics, config)
    return metrics


def write_card(model_dir, args, metrics: dict, config: dict) -> None:
    """The model card every saved model folder carries (hfrepro.hub.write_model_card): the pattern for stages."""
    from pathlib import Path

    from hfrepro import assets
    from hfrepro.hub import write_model_card

    embedded = args.dataset in assets.ASSETS
    write_model_card(
        model_dir, title="hfrepro smoke test: a tiny GPT-2", license="apache-2.0",
        datasets=[args.dataset] if embedded else [],
        language=list(assets.ASSETS[args.dataset].language) if embedded else [],
        pipeline_tag="text-generation", tags=["smoke-test", "gpt2"],
        description=(f"A 2-layer GPT-2 (64-dim) with a {args.vocab_size}-token byte-level BPE tokenizer, trained "
                     f"from scratch for {metrics['steps']} steps on up to {args.max_examples} lines of "
                     f"`{args.dataset}` by `recipes/smoke.py`, on {metrics['world_size']} process(es)."),
        metrics=metrics, eval_metrics=["final_loss", "train_loss"],
        eval_dataset=args.dataset if embedded else Path(args.dataset).name, eval_split="train",
        config=config, command="hfrepro smoke --config run/config.yaml   # run/config.yaml: this run's config",
        usage="Checking that a setup trains, saves, loads and shares a model end to end. Not for generating text.",
        limits="Two layers, a few optimizer steps on a few hundred lines: its text is noise. The losses are "
               "training losses on the lines it was trained on, not a held-out evaluation.")
