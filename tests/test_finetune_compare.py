"""The comparison's pieces: task and training rows, the verdict rule, the table; the recipe in-process."""

import json
import sys

import pytest

from finetune_helpers import tiny_model_dir  # noqa: F401  (fixture)
from hfrepro.finetune import compare


@pytest.fixture(scope="module")
def task():
    from hfrepro.fewshot import load_task
    return load_task(str(compare.TASK_FILE))


def test_task_and_training_rows(task):
    from hfrepro.fewshot import build_prompt
    test, train = task.test_rows(), task.demo_rows()
    assert len(test) == 240 and len(train) == 600
    assert not {r["word"] for r in test} & {r["word"] for r in train}          # held out
    rows = compare.training_rows(task, 5)
    ft = compare.finetuned_task(task)
    for row, src in zip(rows, train):
        # a training example is exactly what the evaluator asks a fine-tuned model, then the answer
        assert build_prompt(ft, [], src) == row["prompt"] == f"{src['word']} ->"
        assert row["completion"] == " " + src["pos"]
    assert build_prompt(task, [], test[0]).startswith(task.instruction)        # the base model gets the instruction
    assert ft.test_rows() == task.test_rows()


def _res(zs, fs, head, lora, full, lora_pct=0.68, n=120):
    r = {"zero-shot": {"accuracy": zs, "n_test": n, "trainable_pct": 0.0},
         "few-shot": {"accuracy": fs, "n_test": n, "trainable_pct": 0.0, "shots": 8}}
    for k, a, pct in (("head", head, 17.4), ("lora", lora, lora_pct), ("full", full, 100.0)):
        r[k] = {"accuracy": a, "n_test": n, "trainable_pct": pct, "trainable_params": 1, "train_seconds": 1.0,
                "peak_memory_bytes": 2**30, "learning_rate": 1e-3, "last_loss": 0.5}
    return r


def test_verdict_rule():
    assert compare.decide(_res(0.03, 0.7, 0.6, 0.80, 0.82))["held"] is True            # close, <1%
    assert compare.decide(_res(0.03, 0.7, 0.6, 0.85, 0.80))["held"] is True            # LoRA ahead
    assert compare.decide(_res(0.03, 0.7, 0.6, 0.75, 0.80))["held"] is True            # exactly 5 points
    d = compare.decide(_res(0.03, 0.7, 0.6, 0.70, 0.82))
    assert d["held"] is False and "ahead by 0.120" in d["sentence"]
    d = compare.decide(_res(0.03, 0.7, 0.6, 0.80, 0.82, lora_pct=1.8))
    assert d["held"] is False and "not under 1%" in d["sentence"]
    d = compare.decide(_res(0.50, 0.7, 0.5, 0.52, 0.53))                                 # nothing learnt
    assert d["held"] is None and "not decidable" in d["sentence"]
    assert "0.800 vs full 0.820" in compare.decide(_res(0.03, 0.7, 0.6, 0.80, 0.82))["evidence"]


def test_table_and_plot(tmp_path):
    r = _res(0.03, 0.7, 0.6, 0.80, 0.82)
    md = compare.markdown_table(r, compare.settings_for("default"))
    assert "| LoRA | 0.8000 |" in md and "few-shot (base, k=8)" in md
    (tmp_path / "runs" / "lora").mkdir(parents=True)
    (tmp_path / "runs" / "lora" / "log.jsonl").write_text(
        "".join(json.dumps({"step": i, "loss": 1.0 / i}) + "\n" for i in range(1, 5)))
    p = compare.plot_comparison(r, tmp_path / "c.png", tmp_path / "runs")
    assert p.is_file() and p.stat().st_size > 1000


def test_budgets_same_for_every_method():
    for b in compare.BUDGETS:
        st = compare.settings_for(b)
        assert set(st.learning_rate) == {"full", "head", "lora"}
        assert st.n_test <= 240 and st.n_train <= 600


def test_recipe_runs_in_process(tiny_model_dir, tmp_path, monkeypatch):
    from hfrepro.cli import run_recipe
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{w} ->", "completion": " noun"}) + "\n"
                            for w in ("cat", "dog", "king", "queen")))
    out = tmp_path / "run"
    run_recipe("sft", ["--model", str(tiny_model_dir), "--train_file", str(data), "--method", "full",
                       "--max_steps", "2", "--learning_rate", "1e-4", "--output_dir", str(out),
                       "--per_device_train_batch_size", "2"])
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 2 and m["method"] == "full" and (out / "model" / "model.safetensors").is_file()
    assert (out / "config.yaml").read_text().count("max_steps: 2") == 1
