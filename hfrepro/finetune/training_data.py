"""Stage 7's data: the training sets `recipes/sft.py` accepts, and the held-out task it is scored on.

    rows = training_rows("dictionary")               # the shipped chat example, prepare-data's fixes applied
    rows = training_rows("word_class", limit=512)    # the comparison task's train split, as prompt/completion
    rows = training_rows("data_prepared.jsonl")      # your JSONL file (checked like `finetune prepare-data`)
    score = task_accuracy(model, tokenizer, "word_class", limit=120)   # stage 6's evaluator, held-out rows

The comparison task `word_class` (tasks/word_class.yaml, a stage-6 task): the part of speech of an English word.
Its `train` rows are the fine-tuning data and the few-shot demonstration pool; its `test` rows are held out.
A training example is exactly what stage 6's evaluator asks a fine-tuned model, then the answer: prompt
"executable ->", completion " adjective". No instruction line: a fine-tuned model learns the task from the
examples (and is scored without it), and the 17-token instruction would triple the tokens of every step.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from hfrepro.errors import UserError
from hfrepro.fewshot.evaluator import build_prompt, evaluate
from hfrepro.fewshot.tasks import load_task
from hfrepro.finetune import jsonl
from hfrepro.finetune.build_data import DICTIONARY, WORD_CLASS

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
SHIPPED = ("dictionary", "word_class")


def task_path(name: str) -> str:
    """A task of hfrepro/finetune/tasks/ by name (word_class, word_class_mc), else `name` as given."""
    p = TASKS_DIR / f"{name}.yaml"
    return str(p) if p.is_file() else name


def training_rows(name: str, limit: int = 0) -> list[dict]:
    """The first `limit` (0: all) training examples of 'dictionary', 'word_class' or a JSONL file."""
    if name == "dictionary":
        rep = jsonl.check_file(DICTIONARY)
        print(f"[sft] {DICTIONARY.name}: {len(rep.rows)} conversations after prepare-data's fixes "
              f"({len(rep.problems)} problems found and fixed or dropped: see `hfrepro finetune prepare-data -f "
              f"{DICTIONARY}`)")
        rows = rep.rows
    elif name == "word_class":
        rows = word_class_rows()
    elif Path(name).is_file():
        rows = jsonl.load_examples(name)
    else:
        raise UserError(f"training file not found: {name}",
                        fix=f"give a JSONL path, or one of the shipped sets: {', '.join(SHIPPED)}")
    return rows[:limit] if limit else rows


def word_class_rows() -> list[dict]:
    """The `train` rows of word_class (file order) as prompt/completion, rendered by stage 6's `build_prompt`:
    the prompt is the question without the instruction line; the completion is the answer as a demonstration
    shows it (target delimiter + answer), without the separator that follows a demonstration."""
    task = load_task(task_path("word_class"))
    rows = [json.loads(x) for x in WORD_CLASS.read_text(encoding="utf-8").splitlines() if x.strip()]
    out = []
    for r in (r for r in rows if r["split"] == "train"):
        prompt = build_prompt(task, [], r, instruction=False)
        shown = build_prompt(task, [r], r, instruction=False)      # demonstration + the same question again
        out.append({"prompt": prompt, "completion": shown[len(prompt):len(shown) - len(prompt)].rstrip()})
    return out


def task_accuracy(model, tokenizer, task: str, limit: int = 0, seed: int = 1234, shots: int = 0,
                  instruction: bool = False, batch_size: int = 32) -> dict:
    """Held-out accuracy of `model` on `task` (a name in tasks/ or a path) by stage 6's evaluator.

    Fine-tuned models are asked as they were trained (`instruction=False`, 0 shots); the base model gets the
    task's instruction and `shots` demonstrations. Returns {"accuracy", "n", "seconds", "cpu_seconds",
    "samples": every prompt, answer and prediction}."""
    t0, c0 = time.time(), time.process_time()
    res = evaluate(model, [load_task(task_path(task))], shots=[shots], tokenizer=tokenizer, limit=limit or None,
                   seed=seed, batch_size=batch_size, progress=False, instruction=instruction)
    name = next(iter(res.scores))
    score = res.scores[name][shots]
    if score is None:
        raise UserError(f"task {name!r}: the prompts do not fit the model's context", fix="use fewer shots")
    return {"accuracy": float(res.accuracy(name, shots)), "n": int(score["n"]),
            "seconds": round(time.time() - t0, 2), "cpu_seconds": round(time.process_time() - c0, 2),
            "samples": res.samples[name][shots]}
