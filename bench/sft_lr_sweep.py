"""How stage 7's learning rates were chosen: each method trained by recipes/sft.py on the comparison's 512
training words (its default budget: 16 steps of 32, 1 epoch) at a few learning rates, scored on a VALIDATION set -
the 88 train-split words that are not among those 512 - never on the held-out test words.

    .venv/bin/python bench/sft_lr_sweep.py                                   # the sweep in docs/finetune.md
    .venv/bin/python bench/sft_lr_sweep.py head:1e-2 lora:5e-3 full:1e-4     # chosen points only

The validation set is a copy of the task (tasks/word_class.yaml) whose scored rows are those 88 words, passed
to the recipe as --eval_task. Each point is a run folder under /tmp/sft-lr-sweep (a finished one is reused).
Writes bench/results/sft_lr_sweep.json and prints a Markdown table (accuracy, final loss, CPU seconds).
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hfrepro.config import config_path, load_yaml  # noqa: E402
from hfrepro.finetune.build_data import WORD_CLASS  # noqa: E402
from hfrepro.finetune.training_data import task_path  # noqa: E402
from hfrepro.recipes import sft  # noqa: E402
from hfrepro.report import md_table  # noqa: E402

DEFAULT = ["head:3e-3", "head:1e-2", "head:3e-2", "lora:2e-3", "lora:5e-3", "lora:1e-2",
           "full:3e-5", "full:1e-4", "full:3e-4"]


def validation_task(n_train: int) -> Path:
    """word_class with the train-split words after the first `n_train` as its scored rows."""
    rows = [json.loads(x) for x in WORD_CLASS.read_text().splitlines() if x.strip()]
    train = [r for r in rows if r["split"] == "train"]
    folder = Path(tempfile.mkdtemp(prefix="sft-lr-sweep-task-"))
    (folder / "validation.jsonl").write_text("".join(
        json.dumps({**r, "split": "train" if i < n_train else "test"}) + "\n" for i, r in enumerate(train)))
    task = yaml.safe_load(Path(task_path("word_class")).read_text())
    task.update(name="word_class_validation", data=str(folder / "validation.jsonl"))
    (folder / "word_class_validation.yaml").write_text(yaml.safe_dump(task))
    return folder / "word_class_validation.yaml"


def main():
    n_train = load_yaml(config_path("sft/lora", "default"))["max_train_examples"]
    val = validation_task(n_train)
    rows = []
    for spec in sys.argv[1:] or DEFAULT:
        method, lr = spec.split(":")
        m = sft.cli(["--config", str(config_path(f"sft/{method}", "default")), "--learning_rate", lr,
                     "--eval_task", str(val), "--save_model", "false", "--threads", "1",
                     "--output_dir", f"/tmp/sft-lr-sweep/{method}-{lr}"])
        rows.append({"method": method, "learning rate": float(lr), "validation accuracy": m["heldout_accuracy"],
                     "n": m["heldout_n"], "final train loss": m["last_loss"], "train CPU s": m["train_cpu_seconds"]})
        print(rows[-1], flush=True)
    res = REPO / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "sft_lr_sweep.json").write_text(json.dumps({"budget": "default", "n_train": n_train, "rows": rows,
                                                        "date": time.strftime("%Y-%m-%d %H:%M")}, indent=2) + "\n")
    print(md_table(rows, digits=4))


if __name__ == "__main__":
    main()
