"""Stage 7 in the main job (hfrepro/reproduce/finetune.py): the runs and their budgets (the same rows and steps
for every method), the verdict rule, the table and plot, and the section on stand-in run folders."""

# pytest fixtures come from finetune_helpers (imported below), and tests name them as arguments:
# ruff: noqa: F811
import json
import math

import pytest
import yaml
from finetune_helpers import tiny_model_dir  # noqa: F401  (fixture)

from hfrepro.claims import StageContext
from hfrepro.config import config_path, load_yaml
from hfrepro.reproduce import finetune as stage

OWN = {"method", "learning_rate", "save_model", "output_dir", "lora_r", "lora_alpha", "lora_dropout",
       "lora_target_modules"}   # what may differ between the three methods' configs of one budget


def test_same_rows_and_steps_for_every_method_and_the_old_budgets():
    for budget, (n_train, n_test, epochs, shots) in {"tiny": (64, 32, 1, 4), "default": (512, 0, 1, 8),
                                                     "full": (512, 0, 3, 8)}.items():
        cfg = {m: load_yaml(config_path(f"sft/{m}", budget)) for m in stage.METHODS}
        shared = [{k: v for k, v in c.items() if k not in OWN} for c in cfg.values()]
        assert shared[0] == shared[1] == shared[2], budget
        c = cfg["lora"]
        assert (c["max_train_examples"], c["eval_limit"], c["num_train_epochs"]) == (n_train, n_test, epochs)
        assert c["per_device_train_batch_size"] == 32 and c["train_file"] == c["eval_task"] == "word_class"
        # every budget runs the LoRA chosen at the default budget (docs/finetune.md): rank 4, every linear layer
        assert {m: cfg[m]["learning_rate"] for m in cfg} == {"head": 0.03, "lora": 0.003, "full": 1e-4}
        assert (c["lora_r"], c["lora_alpha"], c["lora_dropout"], c["lora_target_modules"]) == (4, 8, 0.0,
                                                                                                "all-linear")
        assert {m: cfg[m]["method"] for m in cfg} == {m: m for m in stage.METHODS}
        assert load_yaml(config_path("reproduce/finetune", budget))["shots"] == shots
    ctx = StageContext(dir=stage.Path("/x/finetune"), root=stage.Path("/x"), budget="default", seed=0, threads=2)
    assert [r.argv(ctx)[:4] for r in stage.RUNS[:3]] == [
        ["--config", str(config_path(f"sft/{m}", "default")), "--output_dir", f"/x/finetune/{m}"]
        for m in stage.METHODS]
    # LoRA and full again at the run's seed + 100 and + 200 (the last --seed wins): three training seeds
    extra = {r.folder: r.argv(ctx) for r in stage.RUNS[3:]}
    assert set(extra) == {"lora-seed+100", "full-seed+100", "lora-seed+200", "full-seed+200"}
    assert extra["full-seed+200"][-2:] == ["--seed", "200"] and "sft/full" in extra["full-seed+200"][1]
    assert list(stage.seed_pairs(ctx)) == ["0", "100", "200"]


def _res(zs, fs, head, lora, full, lora_pct=0.68, n=120):
    r = {"zero-shot": {"accuracy": zs, "n_test": n, "trainable_pct": 0.0},
         "few-shot": {"accuracy": fs, "n_test": n, "trainable_pct": 0.0, "shots": 8}}
    for k, a, pct in (("head", head, 17.4), ("lora", lora, lora_pct), ("full", full, 100.0)):
        r[k] = {"accuracy": a, "n_test": n, "trainable_pct": pct, "trainable_params": 1, "train_seconds": 1.0,
                "peak_memory_bytes": 2**30, "learning_rate": 1e-3, "last_loss": 0.5}
    return r


def _words(right: int, n: int) -> list[float]:
    return [1.0] * right + [0.0] * (n - right)


def test_gain_ratio_by_hand():
    # zero-shot 1/10, LoRA 7/10, full 8/10: (0.7 - 0.1) / (0.8 - 0.1) = 6/7
    assert float(stage.gain_ratios(_words(1, 10), _words(7, 10), _words(8, 10))) == pytest.approx(6 / 7)
    assert float(stage.gain_ratios(_words(5, 10), _words(7, 10), _words(5, 10))) == -math.inf  # full learnt nothing
    est, lo, hi = stage.worst_seed_ratio(_words(1, 10), {"a": {"lora": _words(7, 10), "full": _words(8, 10)},
                                                         "b": {"lora": _words(8, 10), "full": _words(8, 10)}})
    assert est == pytest.approx(6 / 7) and lo <= est <= hi   # the worst seed is a
    with pytest.raises(ValueError, match="same words"):
        stage.worst_seed_ratio(_words(1, 10), {"a": {"lora": _words(7, 9), "full": _words(8, 9)}})


def _seeds(pairs, n, pct=0.68):
    return {str(i): {"lora": lo, "full": fu, "lora_pct": pct} for i, (lo, fu) in enumerate(pairs)}


def test_lora_rule_on_every_seed():
    from hfrepro.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

    n = 600
    zero = _words(20, n)
    full = _words(480, n)
    # LoRA answers like full on every seed but 5 words: keeps ~99% of the gain, interval above 0.9
    close = _words(475, n)
    d = stage.decide_claim(zero, _seeds([(close, full)] * 3, n))
    assert d.verdict == REPRODUCED and d.lo > 0.9 and "worst of 3 training seeds" in d.statistic
    # one seed where LoRA keeps only ~70%: the worst seed decides
    weak = _words(340, n)
    d = stage.decide_claim(zero, _seeds([(close, full), (weak, full), (close, full)], n))
    assert d.verdict == NOT_REPRODUCED and d.hi < 0.9 and d.estimate == pytest.approx(320 / 460)
    # 90% right at the threshold, few words: the interval straddles it
    small = 40
    d = stage.decide_claim(_words(1, small), _seeds([(_words(28, small), _words(32, small))] * 3, small))
    assert d.verdict == INCONCLUSIVE and d.lo < 0.9 < d.hi
    # more than 1% of the parameters trainable: not LoRA's claim, whatever the accuracy
    d = stage.decide_claim(zero, _seeds([(close, full)] * 3, n, pct=1.8))
    assert d.verdict == NOT_REPRODUCED and d.estimate == 1.8
    # full fine-tuning did not learn the task: nothing to keep a share of
    d = stage.decide_claim(zero, _seeds([(_words(25, n), _words(30, n))] * 3, n))
    assert d.verdict == INCONCLUSIVE and "did not beat zero-shot" in d.evidence
    assert "seed 0: LoRA 0.792, full 0.800; zero-shot 0.033; 600 held-out words" in \
        stage.decide_claim(zero, _seeds([(close, full)], n)).evidence


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
    """The section scores the base model on the LoRA run's held-out rows and decides the claim from the run
    folders (written here by hand, as recipes/sft.py writes them: metrics.json, heldout_samples.jsonl)."""
    from hfrepro.claims import Decision

    ctx = StageContext(dir=tmp_path / "finetune", root=tmp_path, budget="tiny", seed=0, threads=1)
    answers = {"lora": [True, True, False], "full": [True, True, True], "head": [True, False, False]}
    folders = [(m, m) for m in stage.METHODS] + [(f"{m}-seed+{k}", m) for k in stage.SEED_OFFSETS
                                                 for m in ("lora", "full")]
    for name, m in folders:
        d = ctx.run_dir(name)
        d.mkdir(parents=True)
        acc = sum(answers[m]) / 3
        (d / "metrics.json").write_text(json.dumps({
            "heldout_accuracy": acc, "heldout_n": 3, "heldout_seconds": 1.0, "heldout_cpu_seconds": 1.0,
            "eval_task": "word_class", "examples": 64, "trainable_params": 10,
            "trainable_pct": {"head": 17.4, "lora": 0.68, "full": 100.0}[m],
            "train_seconds": 2.0, "learning_rate": 0.01, "last_loss": 0.3}))
        (d / "heldout_samples.jsonl").write_text("".join(
            json.dumps({"index": i, "exact_match": a}) + "\n" for i, a in enumerate(answers[m])))
        (d / "config.yaml").write_text(yaml.safe_dump({
            "model_name_or_path": str(tiny_model_dir), "eval_task": "word_class", "eval_limit": 3,
            "num_train_epochs": 1, "per_device_train_batch_size": 32}))
    res = stage.section(ctx)
    d = res.claims["lora-near-full"]
    assert isinstance(d, Decision) and "worst of 3 training seeds" in d.statistic
    assert "seed 0: LoRA 0.667, full 1.000" in d.evidence and "seed 200:" in d.evidence and "3 held-out" in d.evidence
    assert "few-shot (base, k=4)" in res.markdown and "finetune/comparison.png" in res.markdown
    assert "| 100 |" in res.markdown          # the per-seed table
    assert res.metrics["lora"] == 2 / 3 and 0.0 <= res.metrics["zero-shot"] <= 1.0
    samples = (ctx.dir / "samples" / "few-shot.jsonl").read_text().splitlines()
    assert len(samples) == 3 and json.loads(samples[0])["prompt"].startswith("Give the part of speech")
    assert json.loads((ctx.dir / "results.json").read_text())["results"]["few-shot"]["shots"] == 4
