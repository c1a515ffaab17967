"""Stage 5 in the main job (hfrepro/reproduce/finetune.py): the runs and their budgets (the same rows and steps
for every method), the verdict rule, the table and plot, and the section on stand-in run folders."""

# pytest fixtures come from finetune_helpers (imported below), and tests name them as arguments:
# ruff: noqa: F811
import json

import yaml
from finetune_helpers import tiny_model_dir  # noqa: F401  (fixture)

from hfrepro.claims import StageContext
from hfrepro.config import config_path, load_yaml
from hfrepro.reproduce import finetune as stage

OWN = {"method", "learning_rate", "save_model", "output_dir", "lora_r", "lora_alpha", "lora_dropout",
       "lora_target_modules"}   # what may differ between the three methods' configs of one budget


def test_same_rows_and_steps_for_every_method_and_the_old_budgets():
    for budget, (n_train, n_test, epochs, shots) in {"tiny": (64, 32, 1, 4), "default": (512, 120, 1, 8),
                                                     "full": (512, 240, 3, 8)}.items():
        cfg = {m: load_yaml(config_path(f"sft/{m}", budget)) for m in stage.METHODS}
        shared = [{k: v for k, v in c.items() if k not in OWN} for c in cfg.values()]
        assert shared[0] == shared[1] == shared[2], budget
        c = cfg["lora"]
        assert (c["max_train_examples"], c["eval_limit"], c["num_train_epochs"]) == (n_train, n_test, epochs)
        assert c["per_device_train_batch_size"] == 32 and c["train_file"] == c["eval_task"] == "word_class"
        assert {m: cfg[m]["learning_rate"] for m in cfg} == {"head": 0.03, "lora": 0.005, "full": 1e-4}
        assert {m: cfg[m]["method"] for m in cfg} == {m: m for m in stage.METHODS}
        assert load_yaml(config_path("reproduce/finetune", budget))["shots"] == shots
    ctx = StageContext(dir=stage.Path("/x/finetune"), root=stage.Path("/x"), budget="default", seed=0, threads=2)
    assert [r.argv(ctx)[:4] for r in stage.RUNS] == [
        ["--config", str(config_path(f"sft/{m}", "default")), "--output_dir", f"/x/finetune/{m}"]
        for m in stage.METHODS]


def _res(zs, fs, head, lora, full, lora_pct=0.68, n=120):
    r = {"zero-shot": {"accuracy": zs, "n_test": n, "trainable_pct": 0.0},
         "few-shot": {"accuracy": fs, "n_test": n, "trainable_pct": 0.0, "shots": 8}}
    for k, a, pct in (("head", head, 17.4), ("lora", lora, lora_pct), ("full", full, 100.0)):
        r[k] = {"accuracy": a, "n_test": n, "trainable_pct": pct, "trainable_params": 1, "train_seconds": 1.0,
                "peak_memory_bytes": 2**30, "learning_rate": 1e-3, "last_loss": 0.5}
    return r


def test_verdict_rule():
    assert stage.decide(_res(0.03, 0.7, 0.6, 0.80, 0.82))["held"] is True            # close, <1%
    assert stage.decide(_res(0.03, 0.7, 0.6, 0.85, 0.80))["held"] is True            # LoRA ahead
    assert stage.decide(_res(0.03, 0.7, 0.6, 0.75, 0.80))["held"] is True            # exactly 5 points
    d = stage.decide(_res(0.03, 0.7, 0.6, 0.70, 0.82))
    assert d["held"] is False and "ahead by 0.120" in d["sentence"]
    d = stage.decide(_res(0.03, 0.7, 0.6, 0.80, 0.82, lora_pct=1.8))
    assert d["held"] is False and "not under 1%" in d["sentence"]
    d = stage.decide(_res(0.50, 0.7, 0.5, 0.52, 0.53))                                 # nothing learnt
    assert d["held"] is None and "not decidable" in d["sentence"]
    assert "0.800 vs full 0.820" in stage.decide(_res(0.03, 0.7, 0.6, 0.80, 0.82))["evidence"]


def test_table_and_plot(tmp_path):
    r = _res(0.03, 0.7, 0.6, 0.80, 0.82)
    md = stage.markdown_table(r, shots=8, n_train=512, epochs=1.0, batch=32)
    assert "| LoRA | 0.8000 |" in md and "few-shot (base, k=8)" in md and "512 training words, 1 epoch(s)" in md
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "log.jsonl").write_text(
        "".join(json.dumps({"step": i, "loss": 1.0 / i}) + "\n" for i in range(1, 5)))
    p = stage.plot_comparison(r, tmp_path / "c.png", {m: tmp_path / m for m in stage.METHODS})
    assert p.is_file() and p.stat().st_size > 1000


def test_section_on_stand_in_runs(tiny_model_dir, tmp_path):
    """The section scores the base model on the LoRA run's held-out rows and decides the claim from the three
    run folders (written here by hand, as recipes/sft.py writes them)."""
    ctx = StageContext(dir=tmp_path / "finetune", root=tmp_path, budget="tiny", seed=0, threads=1)
    for m, acc, pct in (("head", 0.5, 17.4), ("lora", 0.78, 0.68), ("full", 0.8, 100.0)):
        d = ctx.run_dir(m)
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({
            "heldout_accuracy": acc, "heldout_n": 3, "heldout_seconds": 1.0, "heldout_cpu_seconds": 1.0,
            "eval_task": "word_class", "examples": 64, "trainable_params": 10, "trainable_pct": pct,
            "train_seconds": 2.0, "learning_rate": 0.01, "last_loss": 0.3}))
        (d / "config.yaml").write_text(yaml.safe_dump({
            "model_name_or_path": str(tiny_model_dir), "eval_task": "word_class", "eval_limit": 3,
            "num_train_epochs": 1, "per_device_train_batch_size": 32}))
    res = stage.section(ctx)
    evidence, held = res.claims["lora-near-full"]
    assert held is True and "LoRA 0.780 vs full 0.800" in evidence and "(n=3," in evidence
    assert "few-shot (base, k=4)" in res.markdown and "finetune/comparison.png" in res.markdown
    assert res.metrics["lora"] == 0.78 and 0.0 <= res.metrics["zero-shot"] <= 1.0
    samples = (ctx.dir / "samples" / "few-shot.jsonl").read_text().splitlines()
    assert len(samples) == 3 and json.loads(samples[0])["prompt"].startswith("Give the part of speech")
    assert json.loads((ctx.dir / "results.json").read_text())["results"]["few-shot"]["shots"] == 4
