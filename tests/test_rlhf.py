"""Stage 6 (RLHF): preference data, reward read at EOS, the SFT -> RM -> PPO/RLOO/GRPO/DPO pipeline, resume.

Unit tests use a tiny random Llama with SmolLM2's chat template (tests/rlhf_tiny.py) and the tiny preference
file tests/fixtures/prefs_tiny.jsonl; integration tests use the real questions-words asset and run the
pipeline under two processes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from hfrepro.errors import UserError

sys.path.insert(0, os.path.dirname(__file__))
from rlhf_tiny import PREFS, make_tiny_chat_model, tiny_args  # noqa: E402

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_chat_model(tmp_path_factory.mktemp("tiny") / "model")


# --- preference data -------------------------------------------------------------------------------------

def test_rejected_kinds_differ_from_the_answer():
    from hfrepro.rlhf.prefs import KIND_WEIGHTS, Item, make_rejected, preference_rows
    pool = [Item("capital", c, a, f"What is the capital of {c}?")
            for c, a in [("Greece", "Athens"), ("France", "Paris"), ("Peru", "Lima"), ("Cuba", "Havana")]]
    rng = random.Random(0)
    for kind in KIND_WEIGHTS:
        for it in pool:
            rej = make_rejected(it, kind, pool, rng)
            assert rej.lower() != it.answer.lower(), (kind, rej)
    it = pool[0]
    assert make_rejected(it, "echo", pool, rng) == "Greece"
    assert make_rejected(it, "repeated", pool, rng) == "Athens Athens Athens"
    assert "Athens".startswith(make_rejected(it, "truncated", pool, rng))
    assert make_rejected(it, "wrong", pool, rng) in {"Paris", "Lima", "Havana"}
    rows = preference_rows(pool, 3, seed=0)
    assert len(rows) == 12 and all(r["chosen"][0]["content"] == r["answer"] for r in rows)
    assert len({r["kind"] for r in rows if r["prompt"] == rows[0]["prompt"]}) == 3  # distinct kinds per prompt


def test_exact_match_normalisation():
    from hfrepro.rlhf.prefs import exact_match
    assert exact_match(" Athens.", "Athens") and exact_match('"athens"', "Athens") and exact_match("Athens!\n", "Athens")
    assert not exact_match("The answer is Athens.", "Athens") and not exact_match("Athen", "Athens")


def test_user_preference_files_are_checked(tmp_path):
    from hfrepro.rlhf.prefs import load_preferences
    dd = load_preferences(str(PREFS))
    assert set(dd) == {"train", "validation", "test"} and len(dd["train"]) > 20
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "chosen": "a"}) + "\n")
    with pytest.raises(UserError, match="missing: rejected"):
        load_preferences(str(bad))
    bad.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n"
                   + json.dumps({"prompt": "q", "chosen": [{"role": "assistant", "content": "a"}],
                                 "rejected": "b"}) + "\n")
    with pytest.raises(UserError, match="row 2"):
        load_preferences(str(bad))
    bad.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "a"}) + "\n")
    with pytest.raises(UserError, match="identical"):
        load_preferences(str(bad))


# --- pitfalls: pad token, reward read at EOS, separate reference ------------------------------------------

def test_pad_differs_from_eos_and_reward_is_read_at_eos(tiny_model):
    import torch

    from hfrepro.rlhf import models, prefs

    tok = models.load_tokenizer(str(tiny_model))
    assert tok.pad_token_id != tok.eos_token_id and tok.pad_token == "<|endoftext|>"
    row = json.loads(PREFS.read_text().splitlines()[0])
    p = prefs.encode_prompt(tok, row["prompt"])
    c = prefs.encode_completion(tok, row["chosen"])
    assert c[-1] == tok.eos_token_id and tok.eos_token_id in p  # <|im_end|> also closes the prompt turns
    rm = models.load_scorer(str(tiny_model), tok)
    assert rm.config.pad_token_id == tok.pad_token_id
    seq = p + c
    ids = torch.tensor([seq + [tok.pad_token_id] * 3])
    with torch.no_grad():
        pooled = rm(input_ids=ids, attention_mask=(ids != tok.pad_token_id).long()).logits[0, 0]
        per_token = rm.score(rm.model(input_ids=ids).last_hidden_state)[0, :, 0]
    eos_pos = len(seq) - 1
    assert torch.allclose(pooled, per_token[eos_pos], atol=1e-5)  # RewardTrainer / our scorer read at EOS
    assert int(models.reward_index(ids, tok.pad_token_id, len(p))[0]) == eos_pos  # ... and so does PPO


def test_frozen_reference_is_a_separate_object(tiny_model):
    from hfrepro.rlhf import models
    tok = models.load_tokenizer(str(tiny_model))
    pol = models.load_policy(str(tiny_model), tok)
    ref = models.load_frozen(str(tiny_model), tok)
    assert ref is not pol and not any(p.requires_grad for p in ref.parameters())
    assert all(p.requires_grad for p in pol.parameters())


def test_scorer_truncation_and_freezing(tiny_model):
    from hfrepro.rlhf import models
    tok = models.load_tokenizer(str(tiny_model))
    m = models.load_scorer(str(tiny_model), tok, layers=1, trainable_layers=1)
    assert m.config.num_hidden_layers == 1 and len(m.model.layers) == 1
    assert not m.model.embed_tokens.weight.requires_grad and m.score.weight.requires_grad


def test_evaluation_kl_is_zero_against_itself(tiny_model):
    from hfrepro.rlhf import evaluate, models, prefs
    tok = models.load_tokenizer(str(tiny_model))
    m = models.load_frozen(str(tiny_model), tok)
    rows = prefs.unique_prompts(prefs.load_preferences(str(PREFS))["train"])[:5]
    P = [prefs.encode_prompt(tok, r["prompt"]) for r in rows]
    ids, lp = evaluate.generate(m, tok, P, 4, 0.7, batch_size=3, seed=0)
    lp2 = evaluate.sequence_logprobs(m, tok, P, ids, 0.7, batch_size=2)
    assert all(abs(a - b) < 1e-3 for a, b in zip(lp, lp2))  # generation scores == teacher-forced log-probs


# --- the pipeline ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ppo_run(tiny_model, tmp_path_factory):
    """One tiny SFT -> RM -> PPO run, shared by the tests below (they copy it before changing anything)."""
    from hfrepro.rlhf.pipeline import run_pipeline
    out = tmp_path_factory.mktemp("pipeline") / "run"
    summary = run_pipeline(tiny_args(out, tiny_model, algo="ppo"), progress=lambda *_: None)
    return out, summary


def _copy_stages(src, dst, stages=("sft", "reward")):
    import shutil
    for st in stages:
        shutil.copytree(src / st, dst / st)
        m = json.loads((dst / st / "metrics.json").read_text())
        if "model_dir" in m:  # train_sft records where its model is
            m["model_dir"] = str(dst / st / "model")
            (dst / st / "metrics.json").write_text(json.dumps(m))


def test_pipeline_outputs(ppo_run):
    from hfrepro.fsutil import read_json
    from hfrepro.rlhf.pipeline import read_log

    out, s = ppo_run
    assert s["world_size"] == 1 and 0.0 <= s["rm_test_accuracy"] <= 1.0
    log = read_log(out / "ppo" / "log.jsonl")
    assert [r["step"] for r in log] == [1, 2]
    for key in ("reward", "kl", "entropy", "clipfrac", "value_loss", "policy_loss"):
        assert key in log[0], key
    samples = [json.loads(x) for x in (out / "ppo" / "samples.jsonl").read_text().splitlines()]
    assert {r["step"] for r in samples} == {1, 2} and all("reward" in r for r in samples)
    for stage in ("sft", "reward", "ppo"):
        files = {p.name for p in (out / stage / "model").iterdir()}
        assert {"model.safetensors", "config.json", "README.md", "tokenizer.json"} <= files, stage
    ev = read_json(out / "ppo" / "eval.json")
    for key in ("reward", "kl", "win_rate", "exact_match", "greedy_tokens", "repeat_rate", "no_eos_rate"):
        assert key in ev, key
    assert (out / "curves.png").stat().st_size > 1000
    m = read_json(out / "ppo" / "metrics.json")
    assert m["done"] and 0 < m["generate_share"] < 1 and m["policy_trainable_params"] > 0
    assert [r["policy"] for r in s["comparison"]] == ["sft (reference)", "ppo"]


def test_other_algorithms_reuse_sft_and_reward_model(ppo_run, tiny_model, tmp_path):
    from hfrepro.rlhf.pipeline import run_pipeline

    src, _ = ppo_run
    out = tmp_path / "run"
    _copy_stages(src, out, ("sft", "reward", "ppo"))
    mtime = (out / "sft" / "model" / "model.safetensors").stat().st_mtime
    s = run_pipeline(tiny_args(out, tiny_model, algo="rloo,grpo,dpo", rl_steps=1), progress=lambda *_: None)
    assert (out / "sft" / "model" / "model.safetensors").stat().st_mtime == mtime  # reused, not retrained
    assert [r["policy"] for r in s["comparison"]] == ["sft (reference)", "ppo", "rloo", "grpo", "dpo"]
    assert all(r["KL to SFT"] is not None for r in s["comparison"])
    assert "| grpo |" in (out / "comparison.md").read_text()


def test_ppo_resumes_after_interruption(ppo_run, tiny_model, tmp_path, monkeypatch):
    from hfrepro.fsutil import read_json
    from hfrepro.rlhf import ppo
    from hfrepro.rlhf.pipeline import read_log, run_pipeline

    src, _ = ppo_run
    out = tmp_path / "run"
    _copy_stages(src, out)
    args = tiny_args(out, tiny_model, rl_steps=4, save_steps=2, eval_prompts=2)
    real_save = ppo.save_trainable

    def save_then_die(*a, **kw):
        real_save(*a, **kw)
        raise KeyboardInterrupt  # killed right after the checkpoint of update 2
    monkeypatch.setattr(ppo, "save_trainable", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(args, progress=lambda *_: None)
    assert (out / "ppo" / "checkpoints" / "checkpoint-2").is_dir()
    assert not (out / "ppo" / "model").exists()
    monkeypatch.setattr(ppo, "save_trainable", real_save)
    run_pipeline(args, progress=lambda *_: None)
    m = read_json(out / "ppo" / "metrics.json")
    assert m["resumed_from"] == 2 and m["updates"] == 4 and m["updates_this_session"] == 2
    log = read_log(out / "ppo" / "log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    lrs = [r["lr"] for r in log]
    assert lrs == sorted(lrs, reverse=True) and lrs[2] < lrs[1]  # the schedule continued, not restarted


def test_bad_algo_and_changed_config_are_user_errors(tiny_model, tmp_path):
    from hfrepro.rlhf.pipeline import RLHFArguments, run_pipeline
    with pytest.raises(UserError, match="unknown --algo"):
        RLHFArguments(algo="trpo").algos()
    out = tmp_path / "run"
    from hfrepro.rlhf.pipeline import _begin
    from hfrepro.training import RunDir
    from hfrepro.rlhf.models import runtime_state
    run = RunDir(out / "sft")
    _begin(run, {"a": 1}, False, runtime_state())
    with pytest.raises(UserError, match="different config"):
        _begin(run, {"a": 2}, False, runtime_state())
    with pytest.raises(UserError):
        run_pipeline(tiny_args(tmp_path / "r2", tiny_model, dataset=str(tmp_path / "missing.jsonl")))


def test_reward_and_ppo_recipes(tiny_model, tmp_path, capsys):
    import runpy

    from hfrepro.fsutil import read_json
    repo = os.path.dirname(os.path.dirname(__file__))
    rm_dir, ppo_dir = tmp_path / "rm", tmp_path / "ppo"
    common = ["--dataset", str(PREFS), "--threads", "1"]
    for script, argv in [
        ("reward.py", ["--model", str(tiny_model), "--output_dir", str(rm_dir), "--layers", "1",
                       "--trainable_layers", "0", "--max_train_pairs", "16", "--per_device_train_batch_size", "4"]),
        ("ppo.py", ["--sft_model_path", str(tiny_model), "--reward_model_path", str(rm_dir / "model"),
                    "--output_dir", str(ppo_dir), "--total_episodes", "8", "--per_device_train_batch_size", "4",
                    "--local_rollout_forward_batch_size", "4", "--response_length", "4", "--eval_prompts", "2",
                    "--lora_r", "4", "--lora_alpha", "8"]),
    ]:
        old = sys.argv
        sys.argv = [script, *argv, *common]
        try:
            with pytest.raises(SystemExit) as e:
                from hfrepro.errors import run_main
                run_main(runpy.run_path(os.path.join(repo, "recipes", script), run_name="x")["main"])
            assert e.value.code == 0, capsys.readouterr().err[-2000:]
        finally:
            sys.argv = old
    assert "held-out pairwise accuracy" in capsys.readouterr().out
    m = read_json(ppo_dir / "metrics.json")
    assert m["updates"] == 2 and "eval" in m and "eval_reference" in m
    assert (ppo_dir / "model" / "README.md").is_file()


# --- integration: real data, two processes ---------------------------------------------------------------

@pytest.mark.integration
def test_embedded_preferences_match_the_card():
    import re
    from collections import Counter

    from hfrepro.paths import DATA_CARDS_DIR
    from hfrepro.rlhf.prefs import build_items, embedded_preferences

    split = build_items(0)
    keys = {s: {(it.relation, it.x) for it in items} for s, items in split.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["validation"]
    dd = embedded_preferences(0, 2)
    card = (DATA_CARDS_DIR / "qw-prefs.md").read_text()
    for s in ("train", "validation", "test"):
        n_prompts, n_pairs = len(split[s]), len(dd[s])
        assert re.search(rf"\| {s} \| {n_prompts} \| {n_pairs} \|", card), (s, n_prompts, n_pairs)
    for kind, n in Counter(dd["train"]["kind"]).items():
        assert re.search(rf"\| `{kind}` \| .* \| {n} \|", card), (kind, n)


@pytest.mark.integration
def test_two_processes(tiny_model, tmp_path):
    """`accelerate launch` with 2 CPU processes runs the whole pipeline (world size 2) and saves the policy."""
    from hfrepro.fsutil import read_json
    repo = os.path.dirname(os.path.dirname(__file__))
    out = tmp_path / "run2"
    cmd = [os.path.join(os.path.dirname(sys.executable), "accelerate"), "launch", "--config_file",
           "recipes/accelerate/cpu_2proc.yaml", "--main_process_port", "29517", "recipes/rlhf.py",
           "--model", str(tiny_model), "--dataset", str(PREFS), "--output_dir", str(out), "--threads", "1",
           "--eval_prompts", "2", "--sft_examples", "16", "--sft_steps", "2", "--sft_batch_size", "2",
           "--rm_pairs", "8", "--rm_batch_size", "2", "--rm_layers", "1", "--rl_steps", "2", "--rl_batch_size", "2",
           "--max_new_tokens", "4", "--lora_r", "4", "--lora_alpha", "8", "--save_steps", "1", "--algo", "ppo"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": repo}
    r = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_json(out / "metrics.json")
    assert m["world_size"] == 2
    assert read_json(out / "ppo" / "metrics.json")["world_size"] == 2
    assert (out / "ppo" / "model" / "model.safetensors").is_file()
    assert [x["step"] for x in map(json.loads, (out / "ppo" / "log.jsonl").read_text().splitlines())] == [1, 2]
