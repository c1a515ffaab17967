"""Stage 2 on the real embedded assets, at the smallest real size: Shakespeare, SmolLM2, the recipes as
scripts (killed and resumed; two processes under accelerate)."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def test_ngram_recipe_on_shakespeare(tmp_path):
    from hfrepro.recipes import ngram

    m = ngram.cli(["--budget", "tiny", "--output_dir", str(tmp_path / "ngram")])
    assert m["vocab_size"] > 10000 and m["train_tokens"] > 800_000
    bpc = {k: m[k]["bits_per_character"] for k in ("unigram", "bigram", "kn2", "kn3")}
    assert bpc["unigram"] > bpc["bigram"] > bpc["kn2"] > bpc["kn3"]
    assert 1.0 < bpc["kn3"] < 3.0


def test_smollm2_bits_per_character_match_a_direct_computation():
    import torch

    from hfrepro.lm.scoring import score_model, start_token_for
    from hfrepro.lm.text import load_corpus
    from hfrepro.models import load_causal_lm, load_tokenizer

    docs = load_corpus("shakespeare").documents("test", 400, seed=1)
    r = score_model("smollm2-135m-instruct", docs, max_length=512)
    tok, model = load_tokenizer("smollm2-135m-instruct"), load_causal_lm("smollm2-135m-instruct").eval()
    start = tok.convert_tokens_to_ids(start_token_for(tok))
    assert start_token_for(tok) == "<|endoftext|>"
    bits = 0.0
    with torch.no_grad():
        for d in docs:
            ids = torch.tensor([[start] + tok(d, add_special_tokens=False)["input_ids"]])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), -1)
            bits -= float(logp.gather(1, ids[0, 1:, None]).sum()) / math.log(2)
    assert r["bits"] == pytest.approx(bits, rel=1e-4)
    assert r["bits per character"] == pytest.approx(bits / sum(map(len, docs)), rel=1e-4)
    assert 0.5 < r["bits per character"] < 4


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "HFREPRO_THREADS": "1", "OMP_NUM_THREADS": "1"}


def test_clm_recipe_resumes_after_being_killed(tmp_path):
    out = tmp_path / "clm"
    cmd = [sys.executable, "recipes/clm.py", "--output_dir", str(out), "--max_steps", "80", "--save_steps", "10",
           "--eval_strategy", "no", "--logging_steps", "2", "--train_max_chars", "60000", "--vocab_size", "400",
           "--block_size", "32", "--n_layer", "1", "--n_embd", "32", "--n_head", "2", "--eval_max_chars", "1500",
           "--val_max_chars", "1500", "--per_device_train_batch_size", "4", "--disable_tqdm", "true"]
    p = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300

    def saved():  # checkpoints rotate (2 kept): take any complete one
        return sorted(int(c.parent.name.rsplit("-", 1)[1]) for c in out.glob("checkpoint-*/trainer_state.json"))

    while not saved() and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)                     # killed as soon as the first checkpoint is complete
    p.wait()
    killed_at = saved()
    assert killed_at and not (out / "metrics.json").is_file(), "the run was not killed mid-training"
    r = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 80
    assert int(m["resumed_from"].rsplit("-", 1)[1]) >= killed_at[-1] >= 10
    assert (out / "model.safetensors").is_file()
    assert "bits/char" in r.stdout


def test_lstm_recipe_under_accelerate_with_two_processes(tmp_path):
    out = tmp_path / "lstm"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--config_file", "recipes/accelerate/cpu_2proc.yaml", "recipes/lstm.py",
           "--output_dir", str(out), "--max_steps", "6", "--save_steps", "3", "--per_device_train_batch_size", "4",
           "--d_model", "32",
           "--train_max_chars", "40000", "--vocab_size", "400", "--block_size", "32", "--eval_max_chars", "1500",
           "--val_max_chars", "1500", "--eval_steps", "3", "--logging_steps", "1"]
    r = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2
    assert m["tokens_seen"] == 6 * 4 * 2 * 32          # both processes' batches counted
    assert (out / "checkpoint-3").is_dir()
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log if "loss" in x] == [1, 2, 3, 4, 5, 6]  # one process logs
