"""Fine-tuning BERT with a task head: BertForSequenceClassification from a pre-trained encoder, or from scratch.

The second half of BERT's recipe (Devlin et al. 2019): the pre-trained encoder gets a classification layer on
its pooled [CLS] vector and every weight is trained on a labelled task with the Trainer. `--random_init true`
is the control: the same architecture and tokenizer with every weight drawn afresh, trained on the same
examples for the same steps - what pre-training is worth is the difference on the same held-out items. The
default task (`--task order`): is a held-out speech's word order as written, or are its words shuffled
(`data.word_order`: both classes hold the same words, so only the order the encoder read tells them apart),
learnt from 2,000 labelled speeches of the training plays. `--task label` classifies by a label column instead,
e.g. the genre of a speech (comedy, history or tragedy, as the First Folio catalogues its play).

Usage:
    hfrepro classify --model_name_or_path runs/mlm                      # recipes/configs/classify/default.yaml
    hfrepro classify --model_name_or_path runs/mlm --random_init true --output_dir runs/classify-scratch
    hfrepro classify --model_name_or_path runs/mlm --task label --label_map first_folio --min_words 15   # genre
    hfrepro classify --model_name_or_path minilm-l6 --dataset lo-help-en --task label --label_column module \
        --label_map none
"""

import json
import random
from dataclasses import dataclass, field

import numpy as np
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from hfrepro import data, runtime
from hfrepro.bert.data import labelled_examples, special_ids
from hfrepro.cards import write_model_card
from hfrepro.config import RunArguments, parse_args, resolved
from hfrepro.errors import UserError, run_main
from hfrepro.fsutil import atomic_write_text
from hfrepro.hub import hub_request, push_folder
from hfrepro.models import resolve


@dataclass
class ScriptArguments:
    model_name_or_path: str | None = field(default=None, metadata={
        "help": "the pre-trained encoder: a `hfrepro mlm` run folder, a BERT folder, or minilm-l6",
        "aliases": ["--model"]})
    random_init: bool = field(default=False, metadata={
        "help": "the control: the same architecture and tokenizer, every weight drawn afresh"})
    dataset: str = field(default="shakespeare", metadata={"help": "embedded dataset name, folder or file"})
    text_column: str = field(default="text", metadata={"help": "the column holding the text"})
    label_column: str = field(default="work", metadata={"help": "--task label: the column holding the label"})
    task: str = field(default="order", metadata={
        "help": "label: the label column (through --label_map); order: is a text's word order as written, or are "
                "its words shuffled (data.word_order: both classes hold the same words)"})
    label_map: str | None = field(default="first_folio", metadata={
        "help": "--task label: look the label up in a table: first_folio (a play's genre); none: the column is the "
                "label"})
    min_words: int = field(default=12, metadata={"help": "leave out texts shorter than this"})
    max_words: int = field(default=24, metadata={"help": "order task: the first this many words of a text"})
    eval_split: str = field(default="test", metadata={
        "help": "the split scored: test (the claim), or validation (to choose settings without seeing test)"})
    max_train_examples: int = field(default=2000, metadata={"help": "labelled training examples (seeded sample)"})
    max_eval_examples: int = field(default=1000, metadata={"help": "held-out test examples (seeded sample)"})
    max_length: int = field(default=64, metadata={"help": "tokens per example, [CLS] and [SEP] included (at most the "
                                                                  "encoder's positions)"})


def main(script_args: ScriptArguments, training_args: TrainingArguments, run_args: RunArguments) -> dict:
    a = script_args
    if a.label_map in ("", "none", "None"):
        a.label_map = None
    if not a.model_name_or_path:
        raise UserError("--model_name_or_path is required: the pre-trained encoder to fine-tune",
                        fix="train one with `hfrepro mlm` and pass its run folder, or use minilm-l6")
    data.check_eval_split(a.eval_split)
    data.check_task(a.task, ("label", "order"), a.min_words, a.max_words)
    if a.task == "order" and (a.label_column, a.label_map) != (ScriptArguments.label_column, ScriptArguments.label_map):
        raise UserError(f"--label_column {a.label_column} --label_map {a.label_map}: a label is read by --task label "
                        "only; the order task makes its own two labels", fix="add --task label")
    path = resolve(a.model_name_or_path)
    config = resolved(script_args, training_args, run_args)
    push = hub_request(training_args, default_name="hfrepro-classify")  # fails now, not after training
    threads = runtime.setup(seed=training_args.seed, threads=run_args.threads, precision=run_args.precision)
    runtime.cpu_sane(training_args)
    seed = training_args.seed
    train_texts, train_labels = _sample(*examples(a, "train", seed), a.max_train_examples, seed)
    test_texts, test_labels = _sample(*examples(a, a.eval_split, seed), a.max_eval_examples, seed)
    run = runtime.Run.begin(training_args.output_dir, config, overwrite=run_args.overwrite,
                            resume_from_checkpoint=training_args.resume_from_checkpoint, wait=run_args.wait)
    if run.finished:
        print(f"already trained with this config: {run.path}/metrics.json")
        return run.metrics()

    # Data: [CLS] text [SEP], labels as ids (sorted label names).
    names = sorted(set(train_labels))
    tokenizer = AutoTokenizer.from_pretrained(path)
    length = min(a.max_length, AutoConfig.from_pretrained(path).max_position_embeddings)  # what the encoder reads
    train, test = (_encode(tokenizer, t, y, names, length) for t, y in ((train_texts, train_labels),
                                                                               (test_texts, test_labels)))

    # Model: the pre-trained encoder + a new classification layer, or the same architecture drawn afresh.
    ids = {"num_labels": len(names), "id2label": dict(enumerate(names)),
           "label2id": {n: i for i, n in enumerate(names)}}
    if a.random_init:
        model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(path, **ids))
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, **ids)

    # Train every weight with the Trainer; then score the held-out items one by one.
    trainer = Trainer(model=model, args=training_args, train_dataset=train, eval_dataset=test,
                      processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
                      callbacks=run.callbacks())
    result = trainer.train(resume_from_checkpoint=run.resume_from)
    out = trainer.predict(test)
    preds = np.asarray(out.predictions).argmax(-1).tolist()
    gold = [names.index(y) for y in test_labels]
    trainer.save_model()  # the run folder is the model's Hub repository
    if run.is_main:
        atomic_write_text(run.path / "predictions.jsonl", "".join(
            json.dumps({"text": t, "label": names[g], "prediction": names[p]}) + "\n"
            for t, g, p in zip(test_texts, gold, preds)))
    counts = {n: train_labels.count(n) for n in names}
    metrics = run.finish({
        "model": f"{'random-init' if a.random_init else 'pre-trained'} encoder + classification head",
        "encoder": a.model_name_or_path, "random_init": a.random_init, "parameters": model.num_parameters(),
        "steps": trainer.state.global_step, "train_seconds": round(result.metrics["train_runtime"], 2),
        "train_loss": result.training_loss, "threads_per_process": threads, "labels": names,
        "train_examples": len(train_texts), "train_label_counts": counts, "test_examples": len(test_texts),
        "accuracy": sum(p == g for p, g in zip(preds, gold)) / len(gold),
        "majority_baseline_accuracy": max(test_labels.count(n) for n in names) / len(test_labels)})
    if run.is_main:
        write_card(run.path, metrics, config, a)
        print(f"{metrics['model']} ({metrics['steps']} steps on {len(train_texts):,} examples): held-out accuracy "
              f"{metrics['accuracy']:.3f} on {len(test_texts):,} (majority class "
              f"{metrics['majority_baseline_accuracy']:.3f}) -> {run.path}")
        if push:
            print(f"pushed to {push.repo_id}: {push_folder(run.path, push)}")
    return metrics


def examples(a: ScriptArguments, split: str, seed: int) -> tuple[list[str], list[str]]:
    """(texts, labels) of a split: the label column, or the word-order task built from the text column."""
    if a.task == "order":
        rng = random.Random(f"{seed}/{split}")  # each split its own seeded draw
        return data.word_order(data.texts(a.dataset, split, a.text_column), rng, a.min_words, a.max_words)
    return labelled_examples(a.dataset, split, a.text_column, a.label_column, a.label_map, a.min_words)


def _sample(texts: list[str], labels: list[str], n: int, seed: int) -> tuple[list[str], list[str]]:
    """A seeded sample of at most n examples (n <= 0: all), in a fixed random order."""
    order = np.random.default_rng(seed).permutation(len(texts))
    order = order[:n] if n > 0 else order
    return [texts[i] for i in order], [labels[i] for i in order]


def _encode(tokenizer, texts: list[str], labels: list[str], names: list[str], max_length: int):
    from datasets import Dataset

    cls_id, sep_id = special_ids(tokenizer)
    ids = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_length - 2,
                    verbose=False)["input_ids"]
    return Dataset.from_dict({"input_ids": [[cls_id, *x, sep_id] for x in ids],
                              "labels": [names.index(y) if y in names else -100 for y in labels]})


def write_card(folder, metrics: dict, config: dict, a: ScriptArguments) -> None:
    origin = ("a randomly initialised BERT (the control)" if a.random_init
              else f"the pre-trained `{a.model_name_or_path}`")
    write_model_card(
        folder, title=f"BERT sequence classifier on {a.dataset} "
                      f"({'word order' if a.task == 'order' else a.label_map or a.label_column}), hfrepro",
        license="apache-2.0", datasets=[a.dataset], language=["en"], pipeline_tag="text-classification",
        base_model=None if a.random_init else a.model_name_or_path, tags=["bert", "text-classification"],
        config=config, eval_dataset=a.dataset, eval_split=a.eval_split, eval_metrics=["accuracy"],
        command="hfrepro classify --config config.yaml   # config.yaml: this run's config",
        metrics={k: metrics[k] for k in ("parameters", "steps", "train_examples", "test_examples", "accuracy",
                                         "majority_baseline_accuracy")},
        description=(f"BertForSequenceClassification fine-tuned from {origin} by `recipes/classify.py` on "
                     f"{metrics['train_examples']:,} labelled examples for {metrics['steps']} steps; labels: "
                     f"{', '.join(metrics['labels'])}."),
        usage="Teaching: what pre-training is worth to a downstream task. `pipeline('text-classification', "
              "model=this_folder)`.",
        limits="Tiny, trained for seconds." + (" Genre from a single speech is often undecidable."
                                               if a.task == "label" and a.label_map == "first_folio" else ""))


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, TrainingArguments, RunArguments), recipe="classify", argv=argv))


if __name__ == "__main__":
    run_main(cli)
