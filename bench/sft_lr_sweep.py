"""How stage 5's learning rates were chosen: each method trained on the comparison's 512 training rows (16 steps
of 32, 1 epoch, as the default budget) at a few learning rates, scored on a VALIDATION set - the 88 train-split
rows that are not among those 512 - never on the held-out test words.

    .venv/bin/python bench/sft_lr_sweep.py                                   # the sweep in docs/finetune.md
    .venv/bin/python bench/sft_lr_sweep.py head:1e-2 lora:5e-3 full:1e-4     # chosen points only

Writes bench/results/sft_lr_sweep.json and prints a Markdown table (accuracy, final loss, CPU seconds).
"""

import dataclasses
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = ["head:3e-3", "head:1e-2", "head:3e-2", "lora:2e-3", "lora:5e-3", "lora:1e-2",
           "full:3e-5", "full:1e-4", "full:3e-4"]


def main():
    sys.path.insert(0, str(REPO))
    from hfrepro.training import setup_runtime
    setup_runtime(seed=0, threads=1)
    from hfrepro.fewshot import load_task
    from hfrepro.finetune import compare as C
    from hfrepro.finetune.memory import release_memory
    from hfrepro.finetune.sft import build_trainer, fit
    from hfrepro.models import load_causal_lm, load_tokenizer, resolve
    from hfrepro.report import md_table

    st = C.settings_for("default")
    path = resolve(st.model)
    tok = load_tokenizer(path)
    task = load_task(str(C.TASK_FILE))
    train = task.demo_rows()
    val = dataclasses.replace(C.finetuned_task(task), _splits={"test": train[st.n_train:], "train": train[:st.n_train]})
    rows = []
    for spec in sys.argv[1:] or DEFAULT:
        method, lr = spec.split(":")
        c0 = time.process_time()
        s = build_trainer(load_causal_lm(path), C.training_rows(task, st.n_train), method=method,
                          run_dir=f"/tmp/sft-lr-sweep/{method}-{lr}", tokenizer=tok, overwrite=True, echo=False,
                          num_train_epochs=st.epochs, per_device_train_batch_size=st.batch_size,
                          learning_rate=float(lr), save_strategy="no", logging_steps=1, max_length=64, seed=0,
                          data_seed=0)
        m = fit(s)
        cpu = time.process_time() - c0
        e = C.evaluate_accuracy(s.trainer.model, tok, val, 0, None, 0)
        rows.append({"method": method, "learning rate": float(lr), "validation accuracy": e["accuracy"],
                     "n": e["n"], "final train loss": m["last_loss"], "train CPU s": round(cpu, 1)})
        print(rows[-1], flush=True)
        del s
        release_memory()
    res = REPO / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "sft_lr_sweep.json").write_text(json.dumps({"settings": dataclasses.asdict(st), "rows": rows,
                                                        "date": time.strftime("%Y-%m-%d %H:%M")}, indent=2) + "\n")
    print(md_table(rows, digits=4))


if __name__ == "__main__":
    main()
