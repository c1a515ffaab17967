"""The stage-2 recipes on a tiny corpus: the n-grams, the LSTM and the GPT train (the neural ones with
the Trainer), resume, re-run as a no-op, open in pipelines and in the tool commands."""

import json
import math
import os
import random
import subprocess
import sys

import pytest
import torch

from hfrepro.errors import UserError
from tests.conftest import REPO


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    rng = random.Random(0)
    subj = ["The king", "A queen", "The fool", "My lord", "Good Romeo", "Sweet Juliet", "The dog"]
    verb = ["speaks", "sleeps", "weeps", "laughs at", "loves", "fears", "calls"]
    obj = ["the moon.", "his sword.", "thee, sir.", "the crown.", "no man.", "the night!", "her heart?"]
    lines = []
    for _ in range(400):  # the subject decides the verb and (almost) the object: context predicts masked words
        i = rng.randrange(len(subj))
        lines.append(f"{subj[i]} {verb[i]} {obj[(i + rng.randrange(2)) % len(obj)]}")
    f = tmp_path_factory.mktemp("corpus") / "plays.txt"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(f)


def _data(corpus_file, out, *more):
    """Arguments every neural recipe takes here: the tiny budget, overridden down to the tiny corpus."""
    return ["--budget", "tiny", "--dataset", corpus_file, "--vocab_size", "300", "--block_size", "16",
            "--train_max_chars", "0", "--eval_max_chars", "600", "--val_max_chars", "600", "--output_dir", str(out),
            "--per_device_train_batch_size", "4", "--logging_steps", "1", "--eval_steps", "3", "--threads", "1",
            "--disable_tqdm", "true", *map(str, more)]


def _log(folder):
    return [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines()]


def test_lstm_is_trained_by_the_trainer_and_resumes_exactly(corpus_file, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from hfrepro.cards import check_model_card
    from hfrepro.recipes import lstm

    out = tmp_path / "lstm"
    argv = _data(corpus_file, out, "--d_model", "32", "--max_steps", "6", "--save_steps", "2", "--warmup_steps", "2")
    m = lstm.cli(argv)
    assert m["steps"] == 6 and m["tokens_seen"] == 6 * 4 * 16 and m["test_bits_per_character"] > 0
    lrs = [r["learning_rate"] for r in _log(out) if "loss" in r]   # warm-up, then cosine down to 10% of the peak
    assert lrs[2] == pytest.approx(3e-3) and lrs[5] == pytest.approx(3e-4 + 2.7e-3 * (1 + math.cos(0.75 * math.pi)) / 2)
    assert check_model_card(out / "README.md") == [] and (out / "lstm.py").is_file()
    model = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True)   # the run folder is the model repo
    assert type(model).__name__ == "LSTMLM" and model.config.n_positions == 16
    straight = load_file(str(out / "model.safetensors"))

    assert lstm.cli(argv) == m                                    # the same command again: nothing to do
    again = lstm.cli(argv + ["--resume_from_checkpoint", str(out / "checkpoint-4")])
    assert again["resumed_from"].endswith("checkpoint-4") and again["steps"] == 6
    resumed = load_file(str(out / "model.safetensors"))
    for k in straight:                                            # the Trainer restores data order and RNG
        torch.testing.assert_close(resumed[k], straight[k], rtol=0, atol=0)
    assert [r["step"] for r in _log(out) if "loss" in r] == [1, 2, 3, 4, 5, 6]   # rows after step 4 logged once
    with pytest.raises(UserError, match="different config"):
        lstm.cli(_data(corpus_file, out, "--d_model", "16", "--max_steps", "6"))


def test_gpt_pretrains_shares_a_tokenizer_and_generates(corpus_file, tmp_path, capsys):
    from transformers import pipeline

    from hfrepro.cards import check_model_card
    from hfrepro.cli import main
    from hfrepro.recipes import clm

    out = tmp_path / "clm"
    m = clm.cli(_data(corpus_file, out, "--n_layer", "1", "--n_embd", "32", "--n_head", "2", "--max_steps", "40",
                      "--save_steps", "20", "--learning_rate", "0.003"))
    assert m["steps"] == 40 and 0 < m["test_bits_per_character"] < 9
    losses = [r["loss"] for r in _log(out) if "loss" in r]
    assert losses[-1] < losses[0] - 0.5
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= {p.name for p in out.iterdir()}
    assert check_model_card(out / "README.md") == []
    text = pipeline("text-generation", model=str(out))("The king", max_new_tokens=5, do_sample=False)
    assert text[0]["generated_text"].startswith("The king") and len(text[0]["generated_text"]) > len("The king")

    shared = clm.cli(_data(corpus_file, tmp_path / "clm2", "--tokenizer", str(out), "--vocab_size", "999",
                           "--n_layer", "1", "--n_embd", "32", "--max_steps", "2", "--save_steps", "2",
                           "--architecture", "gpt2"))
    assert shared["vocab_size"] == m["vocab_size"]                 # --tokenizer: the other run's, not a new one
    kinds = [json.loads((d / "config.json").read_text())["model_type"] for d in (out, tmp_path / "clm2")]
    assert kinds == ["llama", "gpt2"] and m["model"] == "llama (from scratch)"   # the default, and GPT-2's block
    with pytest.raises(UserError, match="architecture"):           # refused before any data or model
        clm.cli(_data(corpus_file, tmp_path / "clm3", "--architecture", "lstm"))
    assert not (tmp_path / "clm3").exists()

    with pytest.raises(SystemExit) as e:
        main(["generate", "--model", str(out), "--prompt", "The king", "--temperature", "0.8", "--top_k", "20",
              "--top-p", "0.9", "--max_new_tokens", "5", "-n", "2"])
    assert e.value.code == 0 and capsys.readouterr().out.count("The king") == 2
    with pytest.raises(SystemExit) as e:
        main(["perplexity", "--model_name_or_path", str(out), "--file", corpus_file])
    assert e.value.code == 0 and "bits per character" in capsys.readouterr().out


def test_ngram_recipe_fits_saves_and_scores(corpus_file, tmp_path, capsys):
    from hfrepro.cards import check_model_card
    from hfrepro.cli import main
    from hfrepro.lm.ngram import NgramLM
    from hfrepro.recipes import ngram

    out = tmp_path / "ng"
    argv = ["--budget", "tiny", "--dataset", corpus_file, "--output_dir", str(out), "--eval_max_chars", "2000",
            "--val_max_chars", "2000", "--bigram_k_grid", "1.0", "0.01"]
    m = ngram.cli(argv)
    assert m["unigram"]["bits_per_character"] > m["kn3"]["bits_per_character"]
    assert m["bigram_k"] in (1.0, 0.01) and set(m["bigram_k_validation_bpc"]) == {"1.0", "0.01"}
    assert check_model_card(out / "kn3" / "README.md") == []
    lm, speller = NgramLM.from_pretrained(out / "bigram")
    assert lm.k == m["bigram_k"] and speller is not None
    assert ngram.cli(argv) == m                                   # the same command again: nothing to do
    with pytest.raises(SystemExit) as e:
        main(["perplexity", "--model", str(out), "--file", corpus_file])
    assert e.value.code == 0 and "3-gram kneser-ney" in capsys.readouterr().out


@pytest.mark.integration  # six subprocesses (each imports torch): about two minutes on a loaded 2-core machine
def test_recipes_run_from_outside_the_checkout(corpus_file, tmp_path):
    """`hfrepro <recipe> --budget tiny` from another directory; the same command again is a no-op."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HFREPRO_THREADS": "1", "PYTHONPATH": str(REPO)}
    small = ("--max_steps", "2", "--save_steps", "2", "--n_layer", "1", "--n_embd", "16")
    cmds = {"ngram": ["--budget", "tiny", "--dataset", corpus_file, "--eval_max_chars", "2000",
                      "--output_dir", str(tmp_path / "ngram")],
            "lstm": _data(corpus_file, tmp_path / "lstm", "--d_model", "16", *small[:4]),
            "clm": _data(corpus_file, tmp_path / "clm", *small)}
    for name, argv in cmds.items():
        cmd = [sys.executable, "-m", "hfrepro", name, *argv]
        r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert (tmp_path / name / "metrics.json").is_file()
        r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and "already" in r.stdout, r.stderr[-3000:]


def test_temperature_study_samples_scores_and_checks_greedy(corpus_file):
    from transformers import GPT2Config, GPT2LMHeadModel

    from hfrepro.data import read_lines
    from hfrepro.lm.data import train_tokenizer
    from hfrepro.lm.sampling import continuation_bits, temperature_study

    lines = read_lines(corpus_file)
    tok = train_tokenizer(lines, vocab_size=300)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=1, n_head=2,
                                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                       pad_token_id=tok.pad_token_id)).eval()
    prompts = ["The king", "My lord", "Sweet"]
    res = temperature_study(model, tok, prompts, (0, 1.0, 3.0), judge=(model, tok, None), samples_per_prompt=2,
                            max_new_tokens=8, greedy_check_temperature=1e-6)
    rows = res["rows"]
    assert len(rows) == 3 * (1 + 2 + 2) and {r["prompt_index"] for r in rows} == {0, 1, 2}
    assert res["greedy_check"] == {"temperature": 1e-6, "prompts": 3, "identical": 3}
    assert all(0 < r["distinct_2"] <= 1 for r in rows if r["distinct_2"] == r["distinct_2"])
    r = rows[-1]                                                    # the judge's bits: a direct computation
    ids = [tok.bos_token_id] + tok(r["prompt"], add_special_tokens=False)["input_ids"]
    cont = tok(r["text"], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids + cont])).logits[0].double(), -1)
    direct = -sum(float(logp[len(ids) - 1 + j, t]) for j, t in enumerate(cont)) / math.log(2)
    assert r["judge_bits_per_char"] * r["chars"] == pytest.approx(direct, rel=1e-6)
    assert continuation_bits(model, tok, [r["prompt"]] * 2, [r["text"], r["text"]], batch_size=1) == \
        pytest.approx([direct, direct], rel=1e-6)


def test_arch_counts_match_known_values():
    from hfrepro.lm.arch import ARCHS, table

    rows = {r["model"]: r for r in table([a for a in ARCHS if a.name in ("GPT-2 small", "BERT-base", "GPT-3 175B")])}
    assert rows["GPT-2 small"]["parameters"] == 124_439_808          # the released gpt2 checkpoint
    assert rows["BERT-base"]["parameters"] == 109_482_240            # bert-base-uncased
    assert abs(rows["GPT-3 175B"]["diff %"]) < 1
    assert all(r["within tolerance"] for r in rows.values())


def test_cli_errors_are_clear(capsys, tmp_path):
    from hfrepro.cli import main

    with pytest.raises(SystemExit) as e:
        main(["generate", "--model", str(tmp_path / "missing"), "--prompt", "x"])
    assert e.value.code == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(SystemExit) as e:
        main(["perplexity", "--model", str(tmp_path), "--file", str(tmp_path / "empty.txt")])
    assert e.value.code == 2
