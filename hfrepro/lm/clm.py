"""A GPT-2-architecture causal LM pretrained from scratch with the transformers `Trainer`.

The tokenizer is a byte-level BPE trained here on the training split (hfrepro.tokenizer.train_bpe); the
model is `GPT2LMHeadModel` built from a small `GPT2Config`; batches come from
`DataCollatorForLanguageModeling(mlm=False)`; checkpoints, resume and the loss log are the Trainer's own.
At the end the run folder's `model/` is a complete Hub repo (safetensors, config, generation config,
tokenizer, README card with the measured bits per character) that `pipeline("text-generation")` opens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hfrepro.lm.data import LMDataArguments

VOLATILE_KEYS = ("local_rank",)


@dataclass
class CLMArguments(LMDataArguments):
    n_layer: int = field(default=4, metadata={"help": "transformer blocks"})
    n_embd: int = field(default=128, metadata={"help": "model width"})
    n_head: int = field(default=4, metadata={"help": "attention heads"})
    dropout: float = field(default=0.0, metadata={"help": "residual, embedding and attention dropout"})
    threads: int = field(default=0, metadata={"help": "torch threads per process (0: cores / processes)"})
    overwrite: bool = field(default=False, metadata={"help": "start afresh if output_dir holds another run"})


def build_model(args: CLMArguments, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=args.block_size, n_embd=args.n_embd,
                     n_layer=args.n_layer, n_head=args.n_head, resid_pdrop=args.dropout,
                     embd_pdrop=args.dropout, attn_pdrop=args.dropout, bos_token_id=tokenizer.bos_token_id,
                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                     tie_word_embeddings=True)
    return GPT2LMHeadModel(cfg)


def prepare_run(args, targs, config: dict, tokenizer=None):
    """Runtime, run folder (main process writes), tokenizer (given; or trained once and reused on resume),
    training and validation blocks."""
    from hfrepro.lm.data import block_dataset, process_state, run_tokenizer
    from hfrepro.lm.text import load_corpus
    from hfrepro.training import RunDir, count_tokens_seen, cpu_sane, setup_runtime

    threads = setup_runtime(seed=targs.seed, threads=args.threads or None)
    cpu_sane(targs)
    count_tokens_seen(targs)  # tokens seen: the x axis of the training curves
    state = process_state()
    run = RunDir(targs.output_dir)
    config = {k: v for k, v in config.items() if k not in VOLATILE_KEYS}
    if state.is_main_process:
        run.start(config, overwrite=args.overwrite)
    state.wait_for_everyone()
    corpus = load_corpus(args.dataset, args.text_column)
    train_docs = corpus.documents("train", args.train_max_chars, seed=targs.seed)
    tok = run_tokenizer(run, args, train_docs, state, tokenizer)
    train = block_dataset(tok, train_docs, args.block_size)
    val = block_dataset(tok, corpus.documents("validation", args.val_max_chars, seed=targs.seed), args.block_size)
    targs.output_dir = str(run.checkpoints)
    return run, corpus, tok, train, val, threads


def train(args: CLMArguments, targs, config: dict, extra_callbacks=(), score: bool = True) -> dict | None:
    """Pretrain, save `model/`, score the held-out text. Returns metrics on the main process, else None."""
    from transformers import DataCollatorForLanguageModeling, Trainer

    from hfrepro.lm.data import fit
    from hfrepro.training import callbacks

    run, corpus, tok, train_ds, val_ds, threads = prepare_run(args, targs, config)
    model = build_model(args, tok)
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tok,
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
                      callbacks=[*callbacks(run), *extra_callbacks])
    out, seconds, eval_loss, resume = fit(trainer, run, quiet=targs.disable_tqdm)  # no progress bar: no console logs
    acc = trainer.accelerator
    if not acc.is_main_process:
        return None
    model = acc.unwrap_model(trainer.model)
    metrics = {
        "model": "gpt2 (from scratch)", "parameters": model.num_parameters(),
        "non_embedding_parameters": model.num_parameters(exclude_embeddings=True),
        "steps": trainer.state.global_step, "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "train_loss": out.training_loss, "train_seconds": round(seconds, 2), "resumed_from": resume,
        "world_size": acc.num_processes, "threads_per_process": threads,
        "train_blocks": len(train_ds), "vocab_size": len(tok),
        "eval_loss": eval_loss,
    }
    if score:
        from hfrepro.lm.scoring import neural_bits
        docs = corpus.documents("test", args.eval_max_chars, seed=targs.seed)
        metrics.update({f"test_{k}": v for k, v in neural_bits(model, tok, docs, args.block_size).items()})
    save_model(run.model_dir, model, tok, metrics, config, corpus.name)
    metrics["model_dir"] = str(run.model_dir)
    return run.write_metrics(metrics)


def save_model(model_dir: Path, model, tok, metrics: dict, config: dict, dataset: str) -> None:
    from hfrepro.fsutil import atomic_dir
    from hfrepro.cards import write_model_card

    with atomic_dir(model_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(str(tmp))
        write_model_card(
            tmp, title=f"GPT-2-architecture LM pretrained from scratch on {dataset} (hfrepro stage 2)",
            license="apache-2.0", datasets=[dataset], language=["en"], pipeline_tag="text-generation",
            tags=["causal-lm", "gpt2", "from-scratch"], metrics=_card_metrics(metrics), config=config,
            eval_metrics=[k for k in ("test_bits_per_character", "test_perplexity") if k in metrics],
            eval_dataset=dataset, eval_split="test",
            command="hfrepro clm --config run/config.yaml",
            description=(f"A {model.num_parameters():,}-parameter GPT-2 (n_layer={model.config.n_layer}, "
                         f"n_embd={model.config.n_embd}) trained by `recipes/clm.py` for "
                         f"{metrics['steps']} steps ({metrics['tokens_seen']:,} tokens) with a byte-level BPE "
                         "tokenizer trained on the same text. Bits per character are measured on held-out "
                         "documents, each scored from the start token (see docs/lm.md)."),
            usage="Teaching and experiments: see how a small GPT learns text. Not a useful general model.",
            limits="Tiny, trained for minutes on one corpus (Early Modern English plays); it produces "
                   "Shakespeare-flavoured text of little coherence.")


def _card_metrics(m: dict) -> dict:
    keys = ("parameters", "steps", "tokens_seen", "train_loss", "eval_loss", "test_bits_per_character",
            "test_perplexity", "masked_accuracy")
    return {k: m[k] for k in keys if k in m and m[k] is not None}
