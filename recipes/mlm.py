"""BERT pre-training from scratch: masked LM + next-sentence prediction (BERT's two heads) with the Trainer.

Devlin et al. (2019), at a size a laptop trains in a minute: a small `BertConfig`, a byte-level BPE trained here
(<s> and </s> play [CLS] and [SEP], as in RoBERTa; its <mask> takes the space before it, so `pipeline("fill-mask")`
fills whole words), sentence-pair examples from the plays in order (`hfrepro.bert.data`: half the time B follows
A, half the time it comes from another play), and `DataCollatorForLanguageModeling(mlm_probability=0.15)` (80%
<mask>, 10% random, 10% unchanged, drawn afresh for every batch). The masked-LM head runs only at the masked
positions during training (as Google's BERT code does); the saved folder is a plain `BertForPreTraining`
(absolute positions) or `RoFormerForMaskedLM` (rotary) that `pipeline("fill-mask")` loads.

Positions: `--positions rotary` (the default budgets) builds the same post-LayerNorm layers with rotary
position embeddings (RoFormer's blocks, `SparseRoFormerForPreTraining`); `--positions absolute` is BERT's own
learned position vectors, which a 2-layer model at this budget does not learn to use (docs/bert.md shows the
plateau and why). The heads, the data and the loss are BERT's either way.

Switches: `--nsp false` trains the masked LM alone on single segments (RoBERTa found NSP unnecessary);
`--causal true` trains the *left-to-right twin*: the same blocks with a causal attention mask
(`RoFormerForCausalLM`; `BertLMHeadModel` with absolute positions), predicting next tokens, on the same
text for the same steps — the model "BERT sees both sides" is measured against. `--target_share 0.15` (the main
job's twin) keeps a random 15% of the next-token targets of each batch, as many as BERT's masks, so both learn
from the same number of predicted tokens per step at about the same cost (the head runs only there).
`--model_name_or_path minilm-l6` continues from the embedded all-MiniLM-L6-v2 encoder with its WordPiece
tokenizer (its pre-training heads start random).

Reports masked-token accuracy on held-out windows (a seeded 15% of tokens masked) next to the always-the-most-
frequent-token baseline, next-sentence accuracy on held-out pairs (chance: 50%), and fill-mask examples.

Usage:
    hfrepro mlm                                              # recipes/configs/mlm/default.yaml
    hfrepro mlm --budget tiny --output_dir runs/mlm-tiny
    hfrepro mlm --nsp false --output_dir runs/mlm-roberta-style
    hfrepro mlm --causal true --tokenizer runs/mlm --output_dir runs/mlm-l2r
    hfrepro mlm --model_name_or_path minilm-l6 --learning_rate 1e-4 --output_dir runs/mlm-minilm
    hfrepro fill-mask --model runs/mlm --text "Good <mask>, my lord."
"""

from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoTokenizer, DataCollatorForLanguageModeling, Trainer, TrainingArguments

from hfrepro import runtime
from hfrepro.bert.data import block_dataset, load_documents, pair_dataset, stream, tokenize_documents
from hfrepro.bert.evaluate import left_to_right_predictions, masked_windows, nsp_predictions
from hfrepro.bert.mlm import NextTokenSample, mask_absorbs_space, masked_accuracy, most_frequent_token
from hfrepro.bert.model import (
    POSITIONS,
    SparseBertForPreTraining,
    bert_config,
    left_to_right_model,
    pretraining_model,
)
from hfrepro.cards import write_model_card
from hfrepro.config import RunArguments, parse_args, resolved
from hfrepro.errors import UserError, run_main
from hfrepro.hub import hub_request, push_folder
from hfrepro.lm.data import train_tokenizer
from hfrepro.lm.text import load_corpus
from hfrepro.models import load_tokenizer, resolve


@dataclass
class ScriptArguments:
    dataset: str = field(default="shakespeare", metadata={"help": "embedded dataset name, a saved dataset folder, "
                                                                  "or a .txt file (one paragraph per line)"})
    text_column: str = field(default="text", metadata={"help": "the column holding the text"})
    document_column: str | None = field(default="work", metadata={
        "help": "rows with the same value in a row form one document (next-sentence pairs stay inside it); "
                "a dataset without the column is one document"})
    tokenizer: str | None = field(default=None, metadata={"help": "a tokenizer (or model/run folder) to reuse; "
                                                                   "default: train a byte-level BPE"})
    vocab_size: int = field(default=4096, metadata={"help": "BPE vocabulary size when training the tokenizer"})
    tokenizer_chars: int = field(default=1500000, metadata={"help": "training characters the BPE is trained on"})
    block_size: int = field(default=64, metadata={"help": "tokens per example, [CLS] and [SEP]s included"})
    model_name_or_path: str | None = field(default=None, metadata={
        "help": "continue from this BERT encoder (e.g. minilm-l6) with its own tokenizer; default: from scratch",
        "aliases": ["--model", "--init_from"]})
    n_layer: int = field(default=2, metadata={"help": "transformer blocks (from scratch)"})
    n_embd: int = field(default=128, metadata={"help": "model width (from scratch)"})
    n_head: int = field(default=2, metadata={"help": "attention heads (from scratch)"})
    dropout: float = field(default=0.0, metadata={"help": "hidden and attention dropout (from scratch)"})
    positions: str = field(default="rotary", metadata={
        "help": "from scratch: `absolute` = BERT's learned position vectors (BertForPreTraining); `rotary` = the "
                "same layers with rotary positions (RoFormer's blocks), which a small model learns to use in "
                "hundreds of steps instead of thousands (docs/bert.md)", "choices": list(POSITIONS)})
    mlm_probability: float = field(default=0.15, metadata={"help": "fraction of tokens to predict"})
    nsp: bool = field(default=True, metadata={"help": "next-sentence prediction too (BERT); false: MLM alone"})
    causal: bool = field(default=False, metadata={"help": "the left-to-right twin: causal mask, next-token loss"})
    target_share: float = field(default=1.0, metadata={
        "help": "the twin: the share of positions whose next token is a training target in each batch (1: every "
                "position, a plain causal LM; the main job's twin uses 0.15, as many targets as BERT's masks)"})
    val_examples: int = field(default=64, metadata={"help": "validation examples for the loss curve"})
    eval_windows: int = field(default=400, metadata={"help": "held-out windows for masked-token accuracy"})
    eval_pairs: int = field(default=1000, metadata={"help": "held-out sentence pairs for next-sentence accuracy"})
    fill_mask: str = field(default="Good <mask>, my lord.|I will <mask> you to the king.", metadata={
        "help": "sentences to fill after training, separated by |; <mask> is the mask token"})


def main(script_args: ScriptArguments, training_args: TrainingArguments, run_args: RunArguments) -> dict:
    config = resolved(script_args, training_args, run_args)
    check(script_args)
    push = hub_request(training_args, default_name="hfrepro-bert")  # fails now, not after training
    threads = runtime.setup(seed=training_args.seed, threads=run_args.threads, precision=run_args.precision)
    runtime.cpu_sane(training_args)
    run = runtime.Run.begin(training_args.output_dir, config, overwrite=run_args.overwrite,
                            resume_from_checkpoint=training_args.resume_from_checkpoint, wait=run_args.wait)
    if run.finished:
        print(f"already trained with this config: {run.path}/metrics.json")
        return run.metrics()

    # Data: the plays in order -> sentences -> tokens -> sentence pairs (or single blocks), a fresh mask per batch.
    a, seed, block = script_args, training_args.seed, script_args.block_size
    tokenizer = mask_absorbs_space(tokenizer_for(a, seed))
    train_docs = tokenize_documents(tokenizer, load_documents(a.dataset, "train", a.text_column, a.document_column))
    val_docs = tokenize_documents(tokenizer, load_documents(a.dataset, "validation", a.text_column,
                                                            a.document_column))
    train, val = (examples(tokenizer, d, a, seed) for d in (train_docs, val_docs))
    val = val.shuffle(seed=seed).select(range(min(a.val_examples, len(val))))

    # Model: a small BERT from scratch (MLM + NSP heads; the twin: a causal next-token head on the same blocks),
    # with absolute or rotary positions, or the embedded encoder.
    blocks = bert_config(tokenizer, a.n_embd, a.n_layer, a.n_head, block, a.dropout, a.causal, a.positions)
    if a.causal:
        model = left_to_right_model(blocks)
    elif a.model_name_or_path:
        model = SparseBertForPreTraining.from_pretrained(resolve(a.model_name_or_path))
    else:
        model = pretraining_model(blocks)

    # Train: the transformers Trainer; the collator masks 15% of the tokens of every batch afresh.
    collator = (NextTokenSample(tokenizer, a.target_share) if a.causal else
                DataCollatorForLanguageModeling(tokenizer, mlm_probability=a.mlm_probability))
    if not a.nsp:  # no next-sentence labels in the batches: the evaluation loss is the masked LM's alone
        training_args.label_names = ["labels"]
    trainer = Trainer(model=model, args=training_args, train_dataset=train, eval_dataset=val,
                      processing_class=tokenizer, data_collator=collator, callbacks=run.callbacks())
    result = trainer.train(resume_from_checkpoint=run.resume_from)
    eval_loss = trainer.evaluate()["eval_loss"]
    trainer.save_model()  # the run folder is the model's Hub repository

    # Evaluate on the held-out plays: masked tokens (or the twin's next tokens at the same positions), NSP, fills.
    test_docs = tokenize_documents(tokenizer, load_documents(a.dataset, "test", a.text_column, a.document_column))
    scores = evaluate(model, tokenizer, a, seed, stream(train_docs), test_docs, run.path)
    acc = trainer.accelerator
    metrics = run.finish({
        "model": describe(a), "parameters": model.num_parameters(), "steps": trainer.state.global_step,
        "tokens_seen": int(trainer.state.num_input_tokens_seen), "train_loss": result.training_loss,
        "train_seconds": round(result.metrics["train_runtime"], 2), "resumed_from": run.resume_from,
        "world_size": acc.num_processes, "threads_per_process": threads, "vocab_size": len(tokenizer),
        "train_examples": len(train), "eval_loss": eval_loss, **scores})
    if run.is_main:
        write_card(run.path, model, metrics, config, a)
        print(summary(metrics, run.path))
        if push:
            print(f"pushed to {push.repo_id}: {push_folder(run.path, push)}")
    return metrics


def check(a: ScriptArguments) -> None:
    """Arguments that cannot work, refused before anything loads."""
    if a.causal and a.model_name_or_path:
        raise UserError("--causal trains the left-to-right twin from scratch; it cannot continue an encoder",
                        fix="drop --model_name_or_path, or --causal")
    if not 0 < a.mlm_probability < 1:
        raise UserError(f"--mlm_probability must be between 0 and 1, got {a.mlm_probability}")
    if not 0 < a.target_share <= 1:
        raise UserError(f"--target_share must be in (0, 1], got {a.target_share}")
    if a.block_size < 8:
        raise UserError(f"--block_size {a.block_size} is too short for [CLS] A [SEP] B [SEP]", fix="use 8 or more")
    if a.positions not in POSITIONS:
        raise UserError(f"--positions {a.positions!r} is not one of {', '.join(POSITIONS)}")


def tokenizer_for(a: ScriptArguments, seed: int):
    """The encoder's own tokenizer, the one named by --tokenizer, or a byte-level BPE trained on the training text
    (deterministic: a resumed run, and every process of a launch, trains the same one)."""
    if a.model_name_or_path:
        return load_tokenizer(a.model_name_or_path)
    if a.tokenizer:
        if (Path(a.tokenizer) / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(a.tokenizer)
        return load_tokenizer(a.tokenizer)
    docs = load_corpus(a.dataset, a.text_column).documents("train", a.tokenizer_chars, seed=seed)
    return train_tokenizer(docs, a.vocab_size, model_max_length=max(512, a.block_size))


def examples(tokenizer, tok_docs, a: ScriptArguments, seed: int):
    if a.nsp and not a.causal:
        return pair_dataset(tokenizer, tok_docs, a.block_size, seed=seed)
    return block_dataset(tokenizer, tok_docs, a.block_size, causal=a.causal)


def evaluate(model, tokenizer, a: ScriptArguments, seed: int, train_flat, test_docs, folder) -> dict:
    flat = stream(test_docs)
    majority = most_frequent_token(train_flat, tokenizer)
    if a.causal:  # the twin answers at the masked positions from the left side only
        x, chosen = masked_windows(tokenizer, flat, a.block_size, a.eval_windows, seed, a.mlm_probability)
        pred, _ = left_to_right_predictions(model, x, chosen)
        return {"left_to_right_accuracy": float((pred == x[chosen]).float().mean()), "masked_tokens": len(pred),
                "majority_baseline_accuracy": float((x[chosen] == majority).float().mean()),
                "majority_token_id": majority}
    out = masked_accuracy(model, tokenizer, flat, a.block_size, seed=seed, mask_probability=a.mlm_probability,
                          n_windows=a.eval_windows, majority_id=majority)
    out["majority_token_id"] = majority
    if a.nsp:
        labels, preds = nsp_predictions(model, tokenizer, test_docs, a.block_size, a.eval_pairs, seed)
        out["nsp_accuracy"] = sum(p == y for p, y in zip(preds, labels)) / len(labels)
        out["nsp_pairs"] = len(labels)
    out["fill_mask"] = fill_mask(folder, tokenizer, a.fill_mask)
    return out


def fill_mask(folder, tokenizer, sentences: str) -> dict[str, list]:
    """pipeline("fill-mask") on the saved folder: the top 5 for each sentence."""
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    fill = pipeline("fill-mask", model=str(folder), tokenizer=tokenizer)
    out = {}
    for s in filter(None, (t.strip() for t in sentences.split("|"))):
        text = s.replace("<mask>", tokenizer.mask_token)
        if tokenizer.mask_token in text:
            out[s] = [[p["token_str"].strip(), round(float(p["score"]), 3)] for p in fill(text, top_k=5)]
    return out


def describe(a: ScriptArguments) -> str:
    if a.causal:
        return "left-to-right twin (BERT blocks, causal mask, next-token loss)"
    what = "masked LM + next-sentence prediction" if a.nsp else "masked LM"
    if a.model_name_or_path:
        return f"BERT {what} (continued from {a.model_name_or_path})"
    return f"BERT {what} (from scratch, {a.positions} positions)"


def summary(m: dict, path) -> str:
    head = f"{m['model']} ({m['parameters']:,} parameters, {m['steps']} steps): "
    if "left_to_right_accuracy" in m:
        return head + (f"next-token accuracy {m['left_to_right_accuracy']:.3f} at {m['masked_tokens']:,} held-out "
                       f"positions (most-frequent-token baseline {m['majority_baseline_accuracy']:.3f}) -> {path}")
    text = (f"masked-token accuracy {m['masked_accuracy']:.3f} on {m['masked_tokens']:,} held-out tokens "
            f"(most-frequent-token baseline {m['majority_baseline_accuracy']:.3f})")
    if "nsp_accuracy" in m:
        text += f", next-sentence accuracy {m['nsp_accuracy']:.3f} on {m['nsp_pairs']:,} held-out pairs (chance 0.5)"
    fills = "".join(f"\n  {s}  ->  " + ", ".join(t for t, _ in top) for s, top in m.get("fill_mask", {}).items())
    return head + text + f" -> {path}" + fills


def write_card(folder, model, metrics: dict, config: dict, a: ScriptArguments) -> None:
    base = a.model_name_or_path
    origin = f"continued from `{base}`" if base else "pretrained from scratch"
    keys = ("masked_accuracy", "nsp_accuracy", "left_to_right_accuracy")
    write_model_card(
        folder, title=f"{metrics['model']} on {a.dataset} (hfrepro, the BERT chapter)", license="apache-2.0",
        datasets=[a.dataset], language=["en"], pipeline_tag="text-generation" if a.causal else "fill-mask",
        base_model=base,
        tags=list(dict.fromkeys(["bert", "masked-lm", "next-sentence-prediction", model.config.model_type])),
        config=config, eval_dataset=a.dataset, eval_split="test", eval_metrics=[k for k in keys if k in metrics],
        command="hfrepro mlm --config config.yaml   # config.yaml: this run's config",
        metrics={k: metrics[k] for k in ("parameters", "steps", "tokens_seen", "eval_loss", *keys,
                                         "majority_baseline_accuracy") if k in metrics},
        description=(f"A {model.num_parameters():,}-parameter {type(model).__name__.replace('Sparse', '')}, {origin}, "
                     f"trained by `recipes/mlm.py` for {metrics['steps']} steps ({metrics['model']}). Scores are "
                     "measured on held-out plays: masked tokens with a fixed seed, sentence pairs half of them "
                     "consecutive."),
        usage="Teaching and experiments: `pipeline('fill-mask', model=this_folder)`; fine-tune it with "
              "`hfrepro classify --model_name_or_path this_folder`.",
        limits="Tiny and trained for minutes on one corpus of Early Modern English plays.")


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, TrainingArguments, RunArguments), recipe="mlm", argv=argv))


if __name__ == "__main__":
    run_main(cli)
