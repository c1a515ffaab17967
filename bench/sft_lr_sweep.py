"""How stage 7's learning rates and LoRA shape were chosen: each method trained by recipes/sft.py on the
comparison's 512 training words (its default budget: 16 steps of 32, 1 epoch) at a few settings and training
seeds, scored on a VALIDATION set - the 88 train-split words that are not among those 512 - never on the held-out
test words.

    .venv/bin/python bench/sft_lr_sweep.py                                      # the sweep in docs/finetune.md
    .venv/bin/python bench/sft_lr_sweep.py head:1e-2 lora:3e-3:all-linear:4 full:1e-4 --seeds 0   # some points

A point is method:learning_rate, and for LoRA optionally :target_modules:rank (alpha = 2 x rank); any further
:name=value sets that recipe argument (lora:3e-3:all-linear:4:lora_dropout=0.05,
lora:3e-3:all-linear:4:warmup_steps=2:lr_scheduler_type=cosine). Every point runs at each of --seeds (default
0,100,200: the training seeds of the stage's claim, whose rule is the worst seed), at --precision (default fp32;
bf16 is how the main job runs the stage on a CPU with AMX).

    # the dropout sweep of 2026-12-05 (docs/finetune.md, "No dropout on the adapters"), at development seeds
    .venv/bin/python bench/sft_lr_sweep.py --seeds 3,103,203,4,104,204 --precision bf16 full:1e-4 \
        lora:3e-3:all-linear:4:lora_dropout=0.05 lora:3e-3:all-linear:4:lora_dropout=0 \
        lora:4e-3:all-linear:4:lora_dropout=0.05 \
        lora:3e-3:all-linear:4:lora_dropout=0.05:warmup_steps=2:lr_scheduler_type=cosine

The validation set is a copy of the task (tasks/word_class.yaml) whose scored rows are those 88 words,
passed to the recipe as --eval_task. Each run is a folder under /tmp/sft-lr-sweep (a finished one is reused).
Writes bench/results/sft_lr_sweep.json and prints a Markdown table (accuracy per seed, worst, final loss).
"""

import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hfrepro.config import config_path, load_yaml  # noqa: E402
from hfrepro.finetune.build_data import WORD_CLASS  # noqa: E402
from hfrepro.finetune.training_data import task_path  # noqa: E402
from hfrepro.fsutil import atomic_write_json  # noqa: E402
from hfrepro.recipes import sft  # noqa: E402
from hfrepro.report import md_table  # noqa: E402

DEFAULT = ["full:1e-4", *(f"{p}:lora_dropout=0.05" for p in (  # LoRA's dropout then (0 since 2026-12-05)
    "lora:5e-3:attention:8", "lora:4e-3:attention:8", "lora:3e-3:attention:8", "lora:2e-3:all-linear:4",
    "lora:3e-3:all-linear:4"))]


def validation_task(n_train: int) -> Path:
    """word_class with the train-split words after the first `n_train` as its scored rows."""
    rows = [json.loads(x) for x in WORD_CLASS.read_text().splitlines() if x.strip()]
    train = [r for r in rows if r["split"] == "train"]
    folder = Path(tempfile.mkdtemp(prefix="sft-lr-sweep-task-"))
    (folder / "validation.jsonl").write_text("".join(
        json.dumps({**r, "split": "train" if i < n_train else "test"}) + "\n" for i, r in enumerate(train)))
    # the task's own YAML (its `!function` tag kept), renamed and pointed at the validation rows
    text = Path(task_path("word_class")).read_text()
    text = text.replace("task: word_class\n", "task: word_class_validation\n", 1)
    text = text.replace("data/word_class.jsonl", str(folder / "validation.jsonl"), 1)
    (folder / "word_class_validation.yaml").write_text(text)
    return folder / "word_class_validation.yaml"


def point_args(spec: str) -> tuple[str, list[str]]:
    """'lora:3e-3:all-linear:4:lora_dropout=0' -> ('lora', recipe arguments)."""
    method, lr, *rest = spec.split(":")
    lora = [x for x in rest if "=" not in x]
    args = ["--learning_rate", lr]
    for name, value in (x.split("=", 1) for x in rest if "=" in x):
        args += [f"--{name}", value]
    if lora:
        modules, rank = lora
        args += ["--lora_target_modules", modules, "--lora_r", rank, "--lora_alpha", str(2 * int(rank))]
    return method, args


def main():
    argv = sys.argv[1:]
    seeds, precision = ["0", "100", "200"], "fp32"
    if "--seeds" in argv:
        k = argv.index("--seeds")
        seeds, argv = argv[k + 1].split(","), argv[:k] + argv[k + 2:]
    if "--precision" in argv:
        k = argv.index("--precision")
        precision, argv = argv[k + 1], argv[:k] + argv[k + 2:]
    n_train = load_yaml(config_path("sft/lora", "default"))["max_train_examples"]
    val = validation_task(n_train)
    rows = []
    for spec in argv or DEFAULT:
        method, args = point_args(spec)
        runs = [sft.cli(["--config", str(config_path(f"sft/{method}", "default")), *args, "--seed", seed,
                         "--eval_task", str(val), "--save_model", "false", "--threads", "1",
                         "--precision", precision,
                         "--output_dir", f"/tmp/sft-lr-sweep/{spec.replace(':', '-')}-seed{seed}-{precision}"])
                for seed in seeds]
        accs = [m["heldout_accuracy"] for m in runs]
        rows.append({"point": spec, **{f"seed {s}": a for s, a in zip(seeds, accs)}, "worst": min(accs),
                     "n": runs[0]["heldout_n"], "trainable %": runs[0]["trainable_pct"],
                     "final train loss (mean)": sum(m["last_loss"] for m in runs) / len(runs)})
        print(rows[-1], flush=True)
    atomic_write_json(REPO / "bench" / "results" / "sft_lr_sweep.json",
                      {"budget": "default", "n_train": n_train, "seeds": seeds, "precision": precision, "rows": rows,
                       "date": time.strftime("%Y-%m-%d %H:%M")})
    print(md_table(rows, digits=3))

if __name__ == "__main__":
    main()
