"""A BERT masked LM: pretrained from scratch, or MLM continued from the embedded MiniLM encoder.

From scratch: `BertForMaskedLM` from a small `BertConfig`, the same byte-level BPE as the GPT (its <mask>
token absorbs the space before it, as RoBERTa's does, so `pipeline("fill-mask")` fills whole words), and
`DataCollatorForLanguageModeling(mlm_probability=0.15)` (80% <mask>, 10% random, 10% unchanged).
No next-sentence prediction (RoBERTa showed it is not needed).

`--init_from minilm-l6` continues MLM training from the embedded all-MiniLM-L6-v2 encoder with its own
WordPiece tokenizer; the package ships no MLM head, so the head's transform layer starts random (its output
matrix is the encoder's word embeddings, tied).

Masked-token accuracy is measured on the held-out documents with a fixed seed: 15% of the tokens are
replaced by the mask token and the model's top prediction is compared with the original token. The same
positions give the baseline of always answering the most frequent training token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hfrepro.lm.data import LMDataArguments


@dataclass
class MLMArguments(LMDataArguments):
    n_layer: int = field(default=2, metadata={"help": "transformer blocks"})
    n_embd: int = field(default=128, metadata={"help": "model width"})
    n_head: int = field(default=2, metadata={"help": "attention heads"})
    dropout: float = field(default=0.1, metadata={"help": "hidden and attention dropout"})
    mlm_probability: float = field(default=0.15, metadata={"help": "fraction of tokens to predict"})
    init_from: str | None = field(default=None, metadata={"help": "continue MLM from this BERT encoder (e.g. "
                                                                   "minilm-l6) with its own tokenizer"})
    threads: int = field(default=0, metadata={"help": "torch threads per process (0: cores / processes)"})
    overwrite: bool = field(default=False, metadata={"help": "start afresh if output_dir holds another run"})


def mask_absorbs_space(tok):
    """Make a byte-level BPE's <mask> take the space before it (RoBERTa's lstrip), so 'the <mask> of'
    asks for the token ' word' the model learned, not for a bare space."""
    from tokenizers import AddedToken

    if tok.mask_token is None or not tok.is_fast or "ByteLevel" not in str(tok.backend_tokenizer.pre_tokenizer):
        return tok  # only byte-level BPE keeps spaces inside tokens; WordPiece splits on them already
    t = AddedToken(str(tok.mask_token), lstrip=True, special=True, normalized=False)
    tok._tokenizer.add_special_tokens([t])
    tok.mask_token = t
    return tok


def build_model(args: MLMArguments, tokenizer):
    from transformers import BertConfig, BertForMaskedLM

    if args.init_from:
        from hfrepro.models import resolve
        return BertForMaskedLM.from_pretrained(resolve(args.init_from))
    cfg = BertConfig(vocab_size=len(tokenizer), hidden_size=args.n_embd, num_hidden_layers=args.n_layer,
                     num_attention_heads=args.n_head, intermediate_size=4 * args.n_embd,
                     max_position_embeddings=args.block_size, type_vocab_size=1,
                     hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout,
                     pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                     eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
    return BertForMaskedLM(cfg)


def train(args: MLMArguments, targs, config: dict, extra_callbacks=(), score: bool = True) -> dict | None:
    from transformers import DataCollatorForLanguageModeling, Trainer

    from hfrepro.lm.clm import prepare_run
    from hfrepro.lm.data import fit
    from hfrepro.training import callbacks

    tokenizer = None
    if args.init_from:
        from hfrepro.models import load_tokenizer
        tokenizer = load_tokenizer(args.init_from)
    run, corpus, tok, train_ds, val_ds, threads = prepare_run(args, targs, config, tokenizer=tokenizer)
    tok = mask_absorbs_space(tok)
    model = build_model(args, tok)
    collator = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=args.mlm_probability)
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tok,
                      data_collator=collator, callbacks=[*callbacks(run), *extra_callbacks])
    out, seconds, eval_loss, resume = fit(trainer, run, quiet=targs.disable_tqdm)  # no progress bar: no console logs
    acc = trainer.accelerator
    if not acc.is_main_process:
        return None
    model = acc.unwrap_model(trainer.model)
    metrics = {
        "model": f"bert mlm ({'continued from ' + args.init_from if args.init_from else 'from scratch'})",
        "parameters": model.num_parameters(), "steps": trainer.state.global_step,
        "tokens_seen": int(trainer.state.num_input_tokens_seen), "train_loss": out.training_loss,
        "train_seconds": round(seconds, 2), "resumed_from": resume, "world_size": acc.num_processes,
        "threads_per_process": threads, "vocab_size": len(tok), "eval_loss": eval_loss,
    }
    if score:
        docs = corpus.documents("test", args.eval_max_chars, seed=targs.seed)
        majority = most_frequent_token(train_ds, tok)
        metrics.update(masked_accuracy(model, tok, docs, args.block_size, seed=targs.seed,
                                       mlm_probability=args.mlm_probability, majority_id=majority))
    save_model(run.model_dir, model, tok, metrics, config, corpus.name, args)
    metrics["model_dir"] = str(run.model_dir)
    return run.write_metrics(metrics)


def most_frequent_token(train_ds, tok) -> int:
    import collections
    special = set(tok.all_special_ids)
    counts = collections.Counter(t for ids in train_ds["input_ids"] for t in ids if t not in special)
    return counts.most_common(1)[0][0]


def masked_accuracy(model, tok, docs: list[str], max_length: int, seed: int = 0, mlm_probability: float = 0.15,
                    batch_size: int = 16, majority_id: int | None = None) -> dict:
    """Top-1 accuracy at masked positions of held-out documents (fixed seed; every chosen token becomes
    the mask token), the mean cross-entropy there, and the most-frequent-token baseline."""
    import math

    import torch
    from transformers import DataCollatorForLanguageModeling

    from hfrepro.lm.data import start_id

    s = start_id(tok)
    pieces = []
    for ids in tok(docs, add_special_tokens=False, verbose=False)["input_ids"]:
        ids = [s] + ids
        pieces += [ids[i:i + max_length] for i in range(0, len(ids), max_length)]
    collator = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=mlm_probability,
                                               mask_replace_prob=1.0, random_replace_prob=0.0, seed=seed,
                                               return_tensors="pt")
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    right = total = base = 0
    nll = 0.0
    with torch.inference_mode():
        for i in range(0, len(pieces), batch_size):
            batch = collator([{"input_ids": p} for p in pieces[i:i + batch_size]])
            labels = batch.pop("labels")
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
            m = labels != -100
            right += int((logits.argmax(-1)[m] == labels[m]).sum())
            total += int(m.sum())
            nll += float(torch.nn.functional.cross_entropy(logits[m], labels[m], reduction="sum"))
            if majority_id is not None:
                base += int((labels[m] == majority_id).sum())
    model.train(was)
    out = {"masked_tokens": total, "masked_accuracy": right / max(1, total),
           "masked_perplexity": math.exp(nll / max(1, total))}
    if majority_id is not None:
        out["majority_baseline_accuracy"] = base / max(1, total)
        out["majority_token"] = tok.convert_ids_to_tokens(majority_id)
    return out


def save_model(model_dir, model, tok, metrics: dict, config: dict, dataset: str, args: MLMArguments) -> None:
    from hfrepro.fsutil import atomic_dir
    from hfrepro.cards import write_model_card

    with atomic_dir(model_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(str(tmp))
        origin = (f"continued masked-LM training from `{args.init_from}` (all-MiniLM-L6-v2 encoder)"
                  if args.init_from else "pretrained from scratch")
        write_model_card(
            tmp, title=f"BERT masked LM on {dataset}, {origin} (hfrepro stage 2)", license="apache-2.0",
            datasets=[dataset], language=["en"], pipeline_tag="fill-mask",
            base_model="sentence-transformers/all-MiniLM-L6-v2" if args.init_from else None,
            tags=["masked-lm", "bert"], config=config, eval_dataset=dataset,
            eval_metrics=[k for k in ("masked_accuracy",) if k in metrics],
            eval_split="test", command="hfrepro mlm --config run/config.yaml",
            metrics={k: metrics[k] for k in ("parameters", "steps", "tokens_seen", "eval_loss", "masked_accuracy",
                                             "majority_baseline_accuracy") if k in metrics},
            description=(f"A {model.num_parameters():,}-parameter BertForMaskedLM, {origin}, trained by "
                         f"`recipes/mlm.py` for {metrics['steps']} steps with 15% of tokens masked. Masked-token "
                         "accuracy is measured on held-out documents with every chosen token masked."),
            usage="Teaching and experiments: `pipeline('fill-mask', model=this_folder)`.",
            limits="Tiny and trained for minutes on one corpus of Early Modern English plays.")
