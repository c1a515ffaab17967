"""GPT-1's semi-supervised recipe: a pretrained GPT fine-tuned on a small labelled task, against the same network
trained from scratch on the task alone, the same steps (Radford et al. 2018).

Pre-training (unsupervised) is the stage-2 GPT: next-token prediction on the training speeches of Shakespeare's
plays, no labels. Fine-tuning (supervised): `AutoModelForSequenceClassification` (the GPT with a classification
head: `LlamaForSequenceClassification` for stage 2's default GPT, `GPT2ForSequenceClassification` for GPT-2's) reads
a speech and tells whether its words are in the order written or shuffled (`--task order`, the default: the first
`max_words` words of speeches of `min_words` or more, half of them shuffled, so both classes hold the same words and
only their order, which pre-training read, tells them apart: GPT-1's CoLA, grammatical acceptability, in small), or
names the play it comes from among a few plays (`--task play`, the dataset's `work` column: a play's names and words
give much of the answer away), from `train_per_label` labelled speeches per class; the head is a linear layer on the
last token's vector. Both arms have the same architecture, tokenizer, data, optimizer, steps and seed; only the
starting weights differ: the pretrained GPT's, or random ones. Both are scored on every held-out (test-split) speech
of those plays; `predictions.jsonl` of each arm holds one line per test speech, so the two can be compared item by
item (a paired bootstrap: `hfrepro reproduce`).

Usage:
    hfrepro gpt1 --model_name_or_path runs/clm                 # recipes/configs/gpt1/default.yaml
    hfrepro gpt1 --model_name_or_path runs/clm --train_per_label 50 --output_dir runs/gpt1-50
    hfrepro gpt1 --model_name_or_path runs/clm --task play --labels Hamlet Macbeth --output_dir runs/gpt1-2
    hfrepro gpt1 --model_name_or_path runs/clm --lm_weight 0.5 --eval_split validation --output_dir runs/gpt1-aux
        # GPT-1's auxiliary language-model loss, scored on the validation split (to choose settings on)
"""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from hfrepro import data, runtime
from hfrepro.cards import write_model_card
from hfrepro.config import RunArguments, parse_args, resolved
from hfrepro.errors import UserError, run_main
from hfrepro.models import GPT_ARCHITECTURES, resolve


@dataclass
class ScriptArguments:
    model_name_or_path: str = field(default=None, metadata={"help": "the pretrained GPT (a clm run folder)"})
    dataset: str = field(default="shakespeare", metadata={"help": "embedded dataset with train/test splits"})
    text_column: str = field(default="text", metadata={"help": "the text to classify"})
    label_column: str = field(default="work", metadata={"help": "the label"})
    labels: list[str] = field(default_factory=lambda: ["Hamlet", "Macbeth", "Twelfth Night", "King Henry V"],
                              metadata={"help": "the classes (values of the label column)"})
    train_per_label: int = field(default=200, metadata={"help": "labelled training examples per class"})
    max_length: int = field(default=64, metadata={"help": "tokens read per example"})
    arms: list[str] = field(default_factory=lambda: ["pretrained", "scratch"],
                            metadata={"help": "pretrained: start from the GPT; scratch: the same network, random"})
    pretrained_learning_rate: float = field(default=None, metadata={
        "help": "the pretrained arm's learning rate (GPT-1 fine-tuned gently, at a rate far below training from "
                "scratch); default: --learning_rate, the same for both arms"})
    lm_weight: float = field(default=0.0, metadata={
        "help": "GPT-1's auxiliary objective: fine-tune on L_task + lm_weight x L_LM of the same speeches (the paper: "
                "0.5); 0 = the task loss alone"})
    task: str = field(default="order", metadata={
        "help": "play: name the play a speech comes from (its words give much away); order: is the speech's word "
                "order as written, or are its words shuffled (both classes have the same words: only the order, "
                "which the pre-trained GPT has read, tells them apart; GPT-1's CoLA in small)"})
    min_words: int = field(default=12, metadata={"help": "order task: speeches with at least this many words"})
    max_words: int = field(default=24, metadata={"help": "order task: the first this many words of a speech"})
    eval_split: str = field(default="test", metadata={
        "help": "the split scored: test (the claim), or validation (to choose settings without seeing test)"})


def main(script_args: ScriptArguments, training_args: TrainingArguments, run_args: RunArguments) -> dict:
    model_dir = check(script_args)
    if script_args.task == "order":  # its two classes
        script_args.labels = list(ORDER_LABELS)
    config = resolved(script_args, training_args, run_args)
    runtime.setup(seed=training_args.seed, threads=run_args.threads, precision=run_args.precision)
    runtime.cpu_sane(training_args)
    run = runtime.Run.begin(training_args.output_dir, config, overwrite=run_args.overwrite, wait=run_args.wait)
    if run.finished:
        print(f"already trained with this config: {run.path}/metrics.json")
        return run.metrics()

    # Data: a few labelled speeches per play (a seeded sample of the training split); every test-split speech.
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train, test = task_data(script_args, tokenizer, training_args.seed)

    # The two arms: the same network and Trainer settings, pretrained or random starting weights.
    results = {arm: train_arm(arm, model_dir, tokenizer, train, test, script_args, training_args, run.path)
               for arm in script_args.arms}
    metrics = run.finish({"labels": script_args.labels, "train_examples": len(train), "test_examples": len(test),
                          "majority_baseline": majority(test), **results})
    print(" ".join(f"{arm}: accuracy {r['accuracy']:.3f}" for arm, r in results.items())
          + f" (majority class {metrics['majority_baseline']:.3f}; {len(test)} test speeches) -> {run.path}")
    return metrics


def check(s: ScriptArguments) -> str:
    if not s.model_name_or_path:
        raise UserError("--model_name_or_path is required: the pretrained GPT to fine-tune",
                        fix="hfrepro clm --output_dir runs/clm, then hfrepro gpt1 --model_name_or_path runs/clm")
    path = resolve(s.model_name_or_path)
    cfg = Path(path) / "config.json"
    if not cfg.is_file() or json.loads(cfg.read_text()).get("model_type") not in GPT_ARCHITECTURES:
        raise UserError(f"{s.model_name_or_path} is not a GPT model folder ({' or '.join(GPT_ARCHITECTURES)})",
                        fix="use a clm run folder")
    data.check_eval_split(s.eval_split)
    data.check_task(s.task, TASKS, s.min_words, s.max_words)
    if s.lm_weight < 0:
        raise UserError(f"--lm_weight {s.lm_weight}: a weight of the language-model loss is >= 0", fix="use e.g. 0.5")
    bad = [a for a in s.arms if a not in ("pretrained", "scratch")]
    if bad or len(s.labels) < 2 or s.train_per_label < 1:
        raise UserError(f"bad settings: arms {s.arms}, {len(s.labels)} labels, train_per_label {s.train_per_label}",
                        fix="arms are pretrained and/or scratch; give at least 2 labels and 1 example per label")
    return path


TASKS = ("play", "order")
TASK_NAMES = {"play": "play", "order": "word-order"}
TASK_TEXT = {"play": "naming the play of a speech among {labels}",
             "order": "telling a speech's words as written from the same words shuffled"}
ORDER_LABELS = list(data.WORD_ORDER_LABELS)


def task_data(s: ScriptArguments, tokenizer, seed: int):
    """(train, test) datasets of input_ids + label: each speech + newline, as the GPT read text in pre-training."""
    import numpy as np

    dd = data.load(s.dataset)
    if s.task == "order":
        dd = order_task(dd, s, seed)
    index = {name: k for k, name in enumerate(s.labels)}
    missing = [x for x in s.labels if x not in set(dd["train"][s.label_column])]
    if missing:
        raise UserError(f"labels not in the {s.label_column!r} column of {s.dataset}: {missing}")
    rng = np.random.default_rng(seed)
    train = dd["train"].select(rng.permutation(len(dd["train"])))
    counts = dict.fromkeys(s.labels, 0)

    def take(row):
        lab = row[s.label_column]
        if lab in counts and counts[lab] < s.train_per_label:
            counts[lab] += 1
            return True
        return False

    train = train.filter(take, load_from_cache_file=False)
    test = data.pick_split(dd, s.dataset, s.eval_split,
                           fix="score --eval_split test, or give a dataset with that split")
    test = test.filter(lambda r: r[s.label_column] in index, load_from_cache_file=False)

    def encode(batch):
        enc = tokenizer([t + "\n" for t in batch[s.text_column]], truncation=True, max_length=s.max_length)
        return {"input_ids": enc["input_ids"], "label": [index[x] for x in batch[s.label_column]]}

    return (train.map(encode, batched=True, remove_columns=train.column_names),
            test.map(encode, batched=True, remove_columns=test.column_names))


def order_task(dd, s: ScriptArguments, seed: int):
    """The word-order task (`data.word_order`) on every split in turn (one seeded draw), in the label column."""
    import random

    rng = random.Random(seed)

    def make(split):
        texts, labels = data.word_order(split[s.text_column], rng, s.min_words, s.max_words)
        return Dataset.from_dict({s.text_column: texts, s.label_column: labels})

    return DatasetDict({name: make(split) for name, split in dd.items()})


def train_arm(arm: str, model_dir: str, tokenizer, train, test, s: ScriptArguments, training_args, root: Path) -> dict:
    """Fine-tune one arm in <output_dir>/<arm>; its accuracy on the test speeches and predictions.jsonl."""
    import numpy as np

    args = dataclasses.replace(training_args, output_dir=str(root / arm))
    if arm == "pretrained" and s.pretrained_learning_rate is not None:
        args = dataclasses.replace(args, learning_rate=s.pretrained_learning_rate)
    torch.manual_seed(args.seed)  # the same head initialisation in both arms
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(s.labels),
                                                               pad_token_id=tokenizer.pad_token_id)
    if arm == "scratch":  # the same network and shapes, weights drawn afresh
        torch.manual_seed(args.seed)
        model = type(model)(model.config)
    trainer = AuxLMTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer,
                           data_collator=DataCollatorWithPadding(tokenizer), lm_weight=s.lm_weight)
    result = trainer.train()
    pred = trainer.predict(test)
    guess = np.argmax(pred.predictions, axis=-1)
    correct = (guess == pred.label_ids).astype(int).tolist()
    trainer.save_model()
    with open(root / arm / "predictions.jsonl", "w", encoding="utf-8") as f:
        for i, (g, y) in enumerate(zip(guess.tolist(), pred.label_ids.tolist())):
            f.write(json.dumps({"index": i, "label": s.labels[y], "prediction": s.labels[g]}) + "\n")
    write_card(root / arm, model.config.model_type, arm, s, sum(correct) / len(correct), trainer.state.global_step)
    return {"accuracy": sum(correct) / len(correct), "steps": trainer.state.global_step,
            "train_loss": result.training_loss, "train_seconds": round(result.metrics["train_runtime"], 2)}


class AuxLMTrainer(Trainer):
    """GPT-1's fine-tuning loss (Radford et al. 2018, eq. 5): L3 = L2(task) + lambda * L1(language model), the
    language-model loss on the same speeches read through the tied input embedding as the output layer (the
    pre-trained GPT's own head). lambda = 0 is the plain Trainer."""

    def __init__(self, *args, lm_weight: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.lm_weight = lm_weight

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.lm_weight or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        out = model(**inputs, output_hidden_states=True)
        logits = out.hidden_states[-1][:, :-1] @ model.get_input_embeddings().weight.T   # next-token logits
        target = inputs["input_ids"][:, 1:].masked_fill(inputs["attention_mask"][:, 1:] == 0, -100)
        lm = torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=-100)
        loss = out.loss + self.lm_weight * lm
        return (loss, out) if return_outputs else loss


def majority(test) -> float:
    labels = list(test["label"])
    return max(labels.count(k) for k in set(labels)) / len(labels)


def write_card(folder, model_type: str, arm: str, s: ScriptArguments, accuracy: float, steps: int) -> None:
    write_model_card(
        folder, title=f"GPT-1-style {TASK_NAMES[s.task]} classifier ({arm}), hfrepro's Transformer chapter",
        license="apache-2.0", datasets=[s.dataset], language=["en"], pipeline_tag="text-classification",
        tags=[model_type, "semi-supervised", arm], metrics={"accuracy": accuracy, "steps": steps},
        eval_metrics=["accuracy"], eval_dataset=s.dataset, eval_split=s.eval_split,
        command="hfrepro gpt1 --config ../config.yaml",
        description=(f"A GPT ({model_type}) with a classification head "
                     f"{TASK_TEXT[s.task].format(labels=', '.join(s.labels))}, "
                     f"trained on {s.train_per_label} speeches per class by `recipes/gpt1.py` "
                     + ("starting from the pretrained GPT." if arm == "pretrained" else "from random weights.")),
        usage="Teaching: does pre-training help a small labelled task?",
        limits="Tiny; trained for seconds." + (" A play's character names give much of the answer away."
                                               if s.task == "play" else ""))


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, TrainingArguments, RunArguments), recipe="gpt1", argv=argv))


if __name__ == "__main__":
    run_main(cli)
