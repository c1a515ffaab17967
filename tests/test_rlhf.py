"""Stage 9 (RLHF): preference data, reward read at EOS, the SFT -> RM -> ladder/PPO/GRPO/DPO recipe, the
standalone reward and PPO recipes, re-runs and resume (hfrepro's PPO trainer itself: tests/test_rlhf_ppo.py).

Unit tests use a tiny random Llama with SmolLM2's chat template (tests/rlhf_tiny.py) and the tiny preference
file tests/fixtures/prefs_tiny.jsonl; integration tests use the real questions-words asset and run the
recipe under two processes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from hfrepro.errors import UserError
from tests.conftest import REPO, launch_two
from tests.test_reproduce import uncaptioned

sys.path.insert(0, os.path.dirname(__file__))
from rlhf_tiny import PREFS, make_tiny_chat_model, tiny_argv  # noqa: E402


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


def test_echo_detector():
    from hfrepro.rlhf.prefs import echoes
    assert echoes("Greece", "What is the capital of Greece?", "Athens")
    assert echoes(" increasing.", "'increasing' is the -ing form of a verb. What is its past tense?", "increased")
    assert not echoes("Athens", "What is the capital of Greece?", "Athens")
    assert not echoes("Gree", "What is the capital of Greece?", "Athens")  # a word, not a piece of one
    assert not echoes("", "What is the capital of Greece?", "Athens")


def test_exact_match_normalisation():
    from hfrepro.rlhf.prefs import exact_match
    assert exact_match(" Athens.", "Athens") and exact_match('"athens"', "Athens")
    assert exact_match("Athens!\n", "Athens")
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

def test_user_files_keep_a_prompts_pairs_in_one_split(tmp_path):
    """A file with several pairs per prompt: every pair of a prompt lands in one split, so no held-out prompt is
    trained on (the rows used to be split one by one)."""
    from hfrepro.rlhf.prefs import load_preferences

    rows = [{"prompt": f"Question {i}?", "chosen": "yes", "rejected": r}
            for i in range(30) for r in ("no", "maybe", "never")]
    f = tmp_path / "pairs.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dd = load_preferences(str(f), seed=0)
    seen = {s: set(dd[s]["prompt"]) for s in ("train", "validation", "test")}
    assert sum(len(dd[s]) for s in dd) == 90 and all(seen.values())
    assert not seen["train"] & seen["test"] and not seen["train"] & seen["validation"]
    assert not seen["validation"] & seen["test"]
    assert "_prompt_key" not in dd["train"].column_names


def test_pad_differs_from_eos_and_reward_is_read_at_eos(tiny_model):
    import torch

    from hfrepro.rlhf import models, prefs
    from hfrepro.rlhf.ppo import score_and_hidden

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
    ppo_score, _ = score_and_hidden(rm, ids, torch.tensor([eos_pos]), tok.pad_token_id, None)
    assert torch.allclose(ppo_score[0], per_token[eos_pos], atol=1e-5)  # ... and so does PPO


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


# --- recipes/rlhf.py ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("recipe", ["rlhf", "reward", "ppo"])
def test_every_budget_parses(recipe):
    """Each budget YAML holds only known arguments of the right types; default = the main job's old default."""
    import importlib

    from hfrepro.config import parse_args
    mod = importlib.import_module(f"hfrepro.recipes.{recipe}")
    parsed = {b: parse_args(_types(mod), recipe=recipe, argv=["--budget", b]) for b in ("tiny", "default", "full")}
    if recipe == "rlhf":
        from hfrepro.rlhf.online import parse_algos
        assert parse_algos(parsed["full"][0].algo) == ["reinforce", "rloo", "a2c", "ppo", "grpo", "dpo"]
        assert parse_algos(parsed["default"][0].algo) == ["reinforce", "rloo", "a2c", "ppo"]  # the main job's ladder
        assert parsed["tiny"][0].rl_steps == 2
    if recipe == "ppo":
        assert all(p[1].algo == "ppo" for p in parsed.values())


def _types(mod):
    from hfrepro.config import OutputArguments, RunArguments
    from hfrepro.lora import LoraArguments
    if mod.__name__.endswith("rlhf"):
        return (mod.ScriptArguments, LoraArguments, OutputArguments, RunArguments)
    if mod.__name__.endswith("reward"):
        return (mod.ScriptArguments, mod.RewardConfig, RunArguments)
    return (mod.ScriptArguments, mod.PPOConfig, LoraArguments, RunArguments)  # hfrepro's PPOConfig


def rlhf(argv):
    from hfrepro.recipes.rlhf import cli
    return cli(argv)


@pytest.fixture(scope="module")
def ppo_run(tiny_model, tmp_path_factory):
    """One tiny SFT -> RM -> ladder (REINFORCE, RLOO, A2C, PPO) run, shared by the tests below (they copy it
    before changing anything)."""
    out = tmp_path_factory.mktemp("stage") / "rlhf"  # as the main job names it: <stage folder>/rlhf
    return out, rlhf(tiny_argv(out, tiny_model, algo="ladder"))


def _copy_steps(src, dst, steps=("sft", "reward")):
    import shutil
    for st in steps:
        shutil.copytree(src / st, dst / st)


def test_rlhf_outputs(ppo_run):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from hfrepro.fsutil import read_json
    from hfrepro.runtime import read_log

    out, s = ppo_run
    assert s["world_size"] == 1 and 0.0 <= s["rm_test_accuracy"] <= 1.0 and s["sft_examples"] == 16
    log = read_log(out / "ppo" / "log.jsonl")
    assert [r["step"] for r in log] == [1, 2]
    for key in ("reward", "kl", "kl_se", "entropy", "clipfrac", "value_loss", "policy_loss", "grad_var",
                "exact_match", "echo_rate"):
        assert key in log[0], key
    assert 0.0 <= log[0]["exact_match"] <= 1.0 and 0.0 <= log[0]["echo_rate"] <= 1.0
    samples = [json.loads(x) for x in (out / "ppo" / "samples.jsonl").read_text().splitlines()]
    assert {r["step"] for r in samples} == {1, 2} and all("reward" in r for r in samples)
    for step in ("sft", "reward", "reinforce", "rloo", "a2c", "ppo"):  # each step's folder: its model's repository
        files = {p.name for p in (out / step).iterdir()}
        assert {"model.safetensors", "config.json", "README.md", "tokenizer.json", "config.yaml", "metrics.json",
                "status.json"} <= files, step
        assert read_json(out / step / "status.json")["status"] == "finished"
    assert not (out / "sft" / "adapter_config.json").exists()  # the LoRA is merged: a complete model
    assert AutoModelForCausalLM.from_pretrained(out / "ppo").config.num_hidden_layers == 2
    assert AutoModelForSequenceClassification.from_pretrained(out / "reward").config.num_hidden_layers == 1
    ev = read_json(out / "ppo" / "eval.json")
    for key in ("reward", "kl", "win_rate", "exact_match", "exact_match_sampled", "echo_rate_sampled",
                "greedy_tokens", "repeat_rate", "no_eos_rate"):
        assert key in ev, key
    assert (out / "reward" / "eval_pairs.jsonl").is_file()
    assert read_json(out / "sft" / "eval.json")["kl"] == 0.0  # the SFT policy against itself
    from huggingface_hub import ModelCard

    for step in ("sft", "ppo"):  # each evaluated policy's card reports its held-out numbers, not its bookkeeping
        results = {r.metric_name: r.metric_value for r in ModelCard.load(out / step / "README.md").data.eval_results}
        held_out = read_json(out / step / "eval.json")
        assert results and all(results[k] == held_out[k] for k in results), step
        assert {"exact_match", "kl", "reward"} <= set(results) and "updates" not in results
    assert (out / "curves.png").stat().st_size > 1000
    m = read_json(out / "ppo" / "metrics.json")
    assert 0 < m["generate_share"] < 1 and m["policy_trainable_params"] > 0 and m["updates"] == 2
    assert [r["policy"] for r in s["comparison"]] == ["sft (reference)", "reinforce", "rloo", "a2c", "ppo"]
    assert [r["algo"] for r in s["ladder"]] == ["reinforce", "rloo", "a2c", "ppo"]
    assert all(r["gradient variance (median)"] > 0 for r in s["ladder"])
    assert read_json(out / "metrics.json")["comparison"] == s["comparison"]
    assert "rl_steps: 2" in (out / "config.yaml").read_text()  # `--config config.yaml` replays the run


def test_stage_section_decides_the_claims_from_the_run_folder(ppo_run):
    from hfrepro.claims import Decision, StageContext
    from hfrepro.reproduce import rlhf as stage

    out, s = ppo_run
    assert [r.recipe for r in stage.RUNS] == ["rlhf"]
    ctx = StageContext(dir=out.parent, root=out.parent, budget="tiny", seed=0, threads=1)
    res = stage.section(ctx)
    assert set(res.claims) == {c.id for c in stage.CLAIMS}
    assert all(isinstance(d, Decision) for d in res.claims.values())  # the tiny run measured every claim
    assert "curves.png" in res.markdown and uncaptioned(res.markdown) == []
    rm = res.claims["rm-ranks-pairs"]
    assert rm.estimate == pytest.approx(s["rm_test_accuracy"]) and rm.lo <= rm.estimate <= rm.hi
    assert "bootstrap over" in rm.uncertainty
    ev = [json.loads(x) for x in (out / "ppo" / "eval_samples.jsonl").read_text().splitlines()]
    base = [json.loads(x) for x in (out / "sft" / "eval_samples.jsonl").read_text().splitlines()]
    gain = sum(r["reward_sampled"] for r in ev) / len(ev) - sum(r["reward_sampled"] for r in base) / len(base)
    assert res.claims["ppo-reward-gain"].estimate == pytest.approx(gain)  # the statistic is the run's
    kl = res.claims["ppo-kl-bound"]
    top = max([r["kl"] for r in read_log_rows(out / "ppo" / "log.jsonl")] + [sum(r["kl"] for r in ev) / len(ev)])
    assert kl.estimate == pytest.approx(top) and not kl.higher
    assert "| sft (reference) |" in res.markdown and "](rlhf/curves.png)" in res.markdown
    assert "LoRA adapter in every block" in res.markdown  # the tiny budget leaves --rl_lora_layers at 0
    blocks = json.loads((out / "ppo" / "config.json").read_text())["num_hidden_layers"]  # the policy's, not 30
    assert f"(first {s['rm_layers']} of {blocks} blocks of the SFT model)" in res.markdown
    from hfrepro.rlhf.prefs import load_preferences, unique_prompts
    test_prompts = len(unique_prompts(load_preferences(str(PREFS), seed=0)["test"]))  # whole prompts held out
    assert "| reinforce |" in res.markdown and res.metrics["ppo_eval"]["prompts"] == min(4, test_prompts) >= 2


def read_log_rows(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_rerun_of_a_finished_run_changes_nothing(ppo_run, tiny_model):
    out, s = ppo_run
    kept = ("*.safetensors", "log.jsonl", "samples.jsonl", "eval*.json*", "*/metrics.json", "*/config.yaml")
    files = {p: p.stat().st_mtime for pattern in kept for p in out.rglob(pattern)}
    assert len(files) > 15
    again = rlhf(tiny_argv(out, tiny_model, algo="ladder"))
    assert again["comparison"] == s["comparison"]
    changed = [str(p) for p, t in files.items() if p.stat().st_mtime != t]
    assert not changed, changed  # no model, log or evaluation written again


def test_other_algorithms_reuse_sft_and_reward_model(ppo_run, tiny_model, tmp_path):
    src, _ = ppo_run
    out = tmp_path / "run"
    _copy_steps(src, out, ("sft", "reward", "ppo"))
    mtime = (out / "sft" / "model.safetensors").stat().st_mtime
    s = rlhf(tiny_argv(out, tiny_model, algo="grpo,dpo", rl_steps=1))
    assert (out / "sft" / "model.safetensors").stat().st_mtime == mtime  # reused, not retrained
    assert [r["policy"] for r in s["comparison"]] == ["sft (reference)", "ppo", "grpo", "dpo"]
    assert all(r["KL to SFT"] is not None for r in s["comparison"])
    assert "| grpo |" in (out / "comparison.md").read_text()
    for algo in ("grpo", "dpo"):
        assert (out / algo / "model.safetensors").is_file() and not (out / algo / "adapter_config.json").exists()


def test_ppo_alone_equals_the_ladders_last_rung(ppo_run, tiny_model, tmp_path):
    """PPO after REINFORCE, RLOO and A2C in one invocation learns exactly what PPO alone learns from the same SFT
    and reward model: each rung starts from the seed, not from the random streams the rungs before it used."""
    from hfrepro.runtime import read_log
    src, _ = ppo_run
    out = tmp_path / "run"
    _copy_steps(src, out, ("sft", "reward"))
    rlhf(tiny_argv(out, tiny_model, algo="ppo"))
    keys = ("reward", "kl", "policy_loss", "value_loss", "grad_var")
    alone, ladder = read_log(out / "ppo" / "log.jsonl"), read_log(src / "ppo" / "log.jsonl")
    assert len(alone) == len(ladder) >= 2
    for a, b in zip(alone, ladder):
        assert {k: a.get(k) for k in keys} == pytest.approx({k: b.get(k) for k in keys}, rel=1e-5, abs=1e-7)


def test_eval_split_validation_scores_other_prompts(ppo_run, tiny_model, tmp_path):
    """--eval_split validation: the policies and the reward model are scored on the validation prompts and pairs,
    none of them a test prompt, and its steps are never reused by (or from) a test run."""
    from hfrepro.config import load_yaml
    from hfrepro.fsutil import read_json
    from hfrepro.rlhf.prefs import load_preferences

    src, _ = ppo_run
    out = tmp_path / "val"
    rlhf(tiny_argv(out, tiny_model, algo="ppo", rl_steps=1, eval_split="validation"))
    prompts = lambda run: {json.loads(x)["prompt"]  # noqa: E731
                           for x in (run / "sft" / "eval_samples.jsonl").read_text().splitlines()}
    assert prompts(out) and not prompts(out) & prompts(src)
    splits = load_preferences(str(PREFS), seed=0)
    assert read_json(out / "reward" / "metrics.json")["rm_test_pairs"] == len(splits["validation"])
    assert read_json(src / "reward" / "metrics.json")["rm_test_pairs"] == len(splits["test"])
    assert load_yaml(out / "sft" / "config.yaml")["eval_split"] == "validation"
    assert "eval_split" not in load_yaml(src / "sft" / "config.yaml")  # test runs keep their step configs
    _copy_steps(src, tmp_path / "mixed", ("sft",))
    with pytest.raises(UserError, match="different config"):
        rlhf(tiny_argv(tmp_path / "mixed", tiny_model, algo="ppo", eval_split="validation"))
    with pytest.raises(UserError, match="--eval_split 'train'"):
        rlhf(tiny_argv(tmp_path / "bad", tiny_model, eval_split="train"))
    assert not (tmp_path / "bad").exists()  # refused before the run folder or any model


def _ppo_whole_and_argv(ppo_run, tiny_model, tmp_path, save_steps: int):
    """An uninterrupted 4-update PPO run in tmp_path/whole, and the arguments of the same run in tmp_path/run (both
    folders hold ppo_run's SFT and reward steps): the interruption tests kill the second and compare."""
    src, _ = ppo_run
    whole, out = tmp_path / "whole", tmp_path / "run"
    for d in (whole, out):
        _copy_steps(src, d)
    kw = dict(rl_steps=4, save_steps=save_steps, eval_prompts=2, algo="ppo")
    rlhf(tiny_argv(whole, tiny_model, **kw))
    return whole, out, tiny_argv(out, tiny_model, **kw)


def _ppo_log(run) -> list[dict]:
    from hfrepro.runtime import read_log

    keys = ("step", "reward", "kl", "policy_loss", "value_loss", "lr")
    return [{k: r[k] for k in keys} for r in read_log(run / "ppo" / "log.jsonl")]


def test_ppo_resumes_after_interruption(ppo_run, tiny_model, tmp_path, monkeypatch):
    """The recipe killed right after PPO's checkpoint of update 2: the same command again continues from it,
    and logs what an uninterrupted run logs."""
    from hfrepro.fsutil import read_json
    from hfrepro.rlhf import ppo

    whole, out, argv = _ppo_whole_and_argv(ppo_run, tiny_model, tmp_path, save_steps=2)
    real_save = ppo.PPOTrainer.save_checkpoint

    def save_then_die(self, update):
        real_save(self, update)
        raise KeyboardInterrupt  # killed right after the checkpoint of update 2
    monkeypatch.setattr(ppo.PPOTrainer, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        rlhf(argv)
    assert (out / "ppo" / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (out / "ppo" / "model.safetensors").exists()
    assert read_json(out / "ppo" / "status.json")["status"] == "running"
    monkeypatch.setattr(ppo.PPOTrainer, "save_checkpoint", real_save)
    rlhf(argv)  # the same command again: it continues from the checkpoint (the folder lock was released)
    m = read_json(out / "ppo" / "metrics.json")
    assert m["resumed_from"] == 2 and m["updates"] == 4 and m["updates_this_session"] == 2
    assert _ppo_log(out) == _ppo_log(whole)
    samples = [json.loads(x)["step"] for x in (out / "ppo" / "samples.jsonl").read_text().splitlines()]
    assert samples == sorted(samples) and set(samples) == {1, 2, 3, 4}


def test_ppo_killed_before_any_checkpoint_runs_again_without_logging_twice(ppo_run, tiny_model, tmp_path,
                                                                          monkeypatch):
    """Killed after update 2 with no checkpoint yet (as when the disk fills before the model is saved): the same
    command again trains from update 1, and its log and samples hold each update once, as an uninterrupted run's."""
    from hfrepro.rlhf import ppo
    from hfrepro.runtime import read_log

    whole, out, argv = _ppo_whole_and_argv(ppo_run, tiny_model, tmp_path, save_steps=8)
    real_log = ppo.PPOTrainer._log

    def log_then_die(self, update, *args):
        real_log(self, update, *args)
        if update == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(ppo.PPOTrainer, "_log", log_then_die)
    with pytest.raises(KeyboardInterrupt):
        rlhf(argv)
    assert [r["step"] for r in read_log(out / "ppo" / "log.jsonl")] == [1, 2]
    assert not list((out / "ppo").glob("checkpoint-*"))
    monkeypatch.setattr(ppo.PPOTrainer, "_log", real_log)
    rlhf(argv)
    assert _ppo_log(out) == _ppo_log(whole)
    samples = [json.loads(x)["step"] for x in (out / "ppo" / "samples.jsonl").read_text().splitlines()]
    expected = [json.loads(x)["step"] for x in (whole / "ppo" / "samples.jsonl").read_text().splitlines()]
    assert samples == expected


def test_bad_arguments_and_changed_config_are_user_errors(ppo_run, tiny_model, tmp_path):
    from hfrepro.rlhf.online import parse_algos

    with pytest.raises(UserError, match="unknown --algo"):
        parse_algos("trpo")
    with pytest.raises(UserError, match="unknown --algo"):
        rlhf(tiny_argv(tmp_path / "r0", tiny_model, algo="trpo"))
    src, _ = ppo_run
    out = tmp_path / "run"
    _copy_steps(src, out, ("sft",))
    with pytest.raises(UserError, match="different config .*sft_steps"):
        rlhf(tiny_argv(out, tiny_model, sft_steps=3))
    with pytest.raises(UserError):
        rlhf(tiny_argv(tmp_path / "r2", tiny_model, dataset=str(tmp_path / "missing.jsonl")))
    with pytest.raises(UserError, match="must be a multiple"):  # refused before any model loads
        rlhf(tiny_argv(tmp_path / "r3", tiny_model, rl_batch_size=6))
    with pytest.raises(UserError, match="rloo needs"):
        rlhf(tiny_argv(tmp_path / "r4", tiny_model, algo="rloo", num_generations=1, rl_micro_batch_size=1))


# --- recipes/reward.py and recipes/ppo.py: the steps alone --------------------------------------------------

REWARD_TINY = ["--budget", "tiny", "--dataset", str(PREFS), "--threads", "1", "--layers", "1",
               "--trainable_layers", "0", "--max_train_pairs", "16", "--per_device_train_batch_size", "4"]


def test_reward_recipe_from_any_directory_then_resume(tiny_model, tmp_path):
    """`hfrepro reward` outside the checkout; the same command again is a no-op; --resume_from_checkpoint
    continues from a checkpoint of the Trainer."""

    from transformers import AutoModelForSequenceClassification

    from hfrepro.fsutil import read_json
    from hfrepro.recipes.reward import cli
    from hfrepro.runtime import read_log

    rm = tmp_path / "rm"
    argv = [*REWARD_TINY, "--model", str(tiny_model), "--output_dir", str(rm)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "hfrepro", "reward", *argv], cwd=tmp_path, capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "held-out pairwise accuracy" in r.stdout
    m = read_json(rm / "metrics.json")
    assert m["rm_steps"] == 4 and 0 <= m["rm_test_accuracy"] <= 1
    assert AutoModelForSequenceClassification.from_pretrained(rm).config.num_labels == 1
    assert (rm / "README.md").is_file() and (rm / "checkpoint-4").is_dir()
    weights = (rm / "model.safetensors").stat().st_mtime
    assert cli(argv) == m and (rm / "model.safetensors").stat().st_mtime == weights  # a no-op
    out = cli([*argv, "--resume_from_checkpoint", str(rm / "checkpoint-2")])
    assert out["rm_steps"] == 4 and read_json(rm / "status.json")["resumed_from"].endswith("checkpoint-2")
    assert [r["step"] for r in read_log(rm / "log.jsonl") if "loss" in r] == [1, 2, 3, 4]


def test_ppo_recipe(tiny_model, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from hfrepro.fsutil import read_json
    from hfrepro.recipes.ppo import cli as ppo_cli
    from hfrepro.recipes.reward import cli as reward_cli

    rm, out = tmp_path / "rm", tmp_path / "ppo"
    reward_cli([*REWARD_TINY, "--model", str(tiny_model), "--output_dir", str(rm), "--save_strategy", "no"])
    common = ["--budget", "tiny", "--dataset", str(PREFS), "--threads", "1", "--model", str(tiny_model),
              "--reward_model_path", str(rm), "--output_dir", str(out)]
    with pytest.raises(UserError, match="unknown algo"):
        ppo_cli([*common, "--algo", "trpo"])
    m = ppo_cli([*common, "--total_episodes", "8", "--per_device_train_batch_size", "2",
                 "--gradient_accumulation_steps", "2", "--local_rollout_forward_batch_size", "4",
                 "--response_length", "4", "--eval_prompts", "2", "--lora_r", "4", "--lora_alpha", "8",
                 "--save_steps", "1"])
    assert m["updates"] == 2 and "eval" in m and "eval_reference" in m and m["eval_reference"]["kl"] == 0.0
    assert (out / "README.md").is_file() and (out / "eval_reference.json").is_file()
    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 2
    assert read_json(out / "metrics.json")["updates"] == 2
    assert "PPO updates" in capsys.readouterr().out


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
    """`accelerate launch` with 2 CPU processes runs the whole recipe (world size 2) and saves the policy."""
    from hfrepro.fsutil import read_json
    out = tmp_path / "run2"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "recipes/accelerate/cpu_2proc.yaml",
           "--main_process_port", "29517", "recipes/rlhf.py",
           *tiny_argv(out, tiny_model, eval_prompts=2, sft_batch_size=2, rm_pairs=8, rm_batch_size=2,
                      rl_batch_size=4, save_steps=1, algo="ppo")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = launch_two(cmd, fresh=out, cwd=REPO, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_json(out / "metrics.json")["world_size"] == 2
    assert read_json(out / "reward" / "metrics.json")["world_size"] == 2
    assert read_json(out / "ppo" / "metrics.json")["world_size"] == 2
    assert (out / "ppo" / "model.safetensors").is_file() and (out / "sft" / "model.safetensors").is_file()
    assert [x["step"] for x in map(json.loads, (out / "ppo" / "log.jsonl").read_text().splitlines())] == [1, 2]


def test_the_main_job_evaluates_sft_and_ppo_and_still_shows_every_rung(tmp_path):
    """The default budget evaluates only the policies its claims read (eval_algos: ppo); the ladder table keeps
    every rung from its training rollouts, with no held-out number for the rungs not evaluated."""
    from hfrepro.config import parse_args
    from hfrepro.recipes import rlhf
    from hfrepro.rlhf.compare import comparison_rows, ladder_rows
    from hfrepro.rlhf.online import parse_algos

    script = parse_args(_types(rlhf), recipe="rlhf", argv=["--budget", "default"])[0]
    assert parse_algos(script.eval_algos) == ["ppo"] and script.algo == "ladder"
    log = {"reward": 1.0, "exact_match": 0.5, "kl": 0.1, "grad_var": 2.0, "grad_noise_ratio": 3.0}
    for algo in ("reinforce", "rloo", "a2c", "ppo"):
        (tmp_path / algo).mkdir()
        (tmp_path / algo / "log.jsonl").write_text(json.dumps({"step": 1, **log}) + "\n")
    (tmp_path / "sft").mkdir()
    for folder in ("sft", "ppo"):
        (tmp_path / folder / "eval.json").write_text(json.dumps({"reward": 1.0, "exact_match_sampled": 0.4}))
    assert [r["policy"] for r in comparison_rows(tmp_path)] == ["sft (reference)", "ppo"]
    ladder = ladder_rows(tmp_path)
    assert [r["algo"] for r in ladder] == ["reinforce", "rloo", "a2c", "ppo"]
    assert [r["exact match (held-out)"] for r in ladder] == [None, None, None, 0.4]
