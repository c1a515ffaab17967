"""Stage 7 on the real embedded SmolLM2 at the smallest real size: the README workflow (prepare-data on the
shipped example -> LoRA -> adapter load -> chat), the context check with the real tokenizer, `hfrepro sft
--budget tiny` from outside the checkout, and the recipe under accelerate with 2 processes."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import PY, REPO, run_cli
from finetune_helpers import tiny_chat_model

from hfrepro.finetune import jobs, jsonl
from hfrepro.finetune.build_data import DICTIONARY
from hfrepro.finetune.chat import ChatSession
from hfrepro.finetune.cli import start
from hfrepro.models import load_causal_lm, load_tokenizer

pytestmark = pytest.mark.integration


def test_readme_workflow_small(tmp_path):
    tok = load_tokenizer("smollm2-135m-instruct")
    rep = jsonl.check_file(DICTIONARY, tokenizer=tok, context=8192, max_length=512)
    assert len(rep.problems) == 6 and len(rep.rows) == 298 and max(rep.token_counts) < 512
    prepared = jsonl.write_prepared(rep, tmp_path / "dictionary_prepared.jsonl")
    req = jobs.JobRequest(training_file=str(prepared), method="lora", max_steps=2, per_device_train_batch_size=4,
                          threads=1)
    run = jobs.create(req, base=tmp_path / "runs", name="ft-readme")
    start(run, background=False)
    assert jobs.job_status(run)["status"] == "succeeded"
    m = json.loads((run / "metrics.json").read_text())
    assert m["trainable_pct"] < 1.0 and m["assistant_only_loss"] and m["steps"] == 2
    base = json.loads((run / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base == "HuggingFaceTB/SmolLM2-135M-Instruct"               # the Hub id, as a Hub user loads it
    model = load_causal_lm(str(run))                                   # offline: on the embedded copy of that base
    assert model.peft_config["default"].r == 8
    out = open(os.devnull, "w")
    s = ChatSession.load("ft-readme", runs_dir=tmp_path / "runs", max_new_tokens=12, temperature=0.0, out=out)
    a1 = s.send("What does \"harbor\" mean?")
    assert a1 and len(s.messages) == 2
    s.send("What part of speech is it?")
    assert len(s.messages) == 4


def test_too_long_with_the_real_context(tmp_path):
    f = tmp_path / "long.jsonl"
    f.write_text(json.dumps({"prompt": "word " * 9000 + "->", "completion": " noun"}) + "\n"
                 + json.dumps({"prompt": "cat ->", "completion": " noun"}) + "\n")
    rep = jsonl.check_file(f, tokenizer=load_tokenizer("smollm2-135m-instruct"), context=8192)
    assert [(p.line, p.code) for p in rep.problems] == [(1, "too-long")]
    assert "longer than the model's context of 8,192" in rep.problems[0].message


def test_tiny_budget_from_outside_the_checkout(tmp_path):
    """`hfrepro sft --budget tiny` runs from any directory (the recipe and its configs ship in the package)."""
    r = run_cli("sft", "--budget", "tiny", "--output_dir", "sft-tiny", "--threads", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "sft-tiny" / "metrics.json").read_text())
    assert m["steps"] == 2 and m["examples"] == 16 and m["assistant_only_loss"] and m["trainable_pct"] < 1
    assert (tmp_path / "sft-tiny" / "adapter_config.json").is_file()
    r = run_cli("sft", "--budget", "tiny", "--output_dir", "sft-tiny", "--threads", "1", cwd=tmp_path)
    assert r.returncode == 0 and "already trained with this config" in r.stdout     # a finished run: no-op


def test_recipe_two_processes(tmp_path):
    """recipes/sft.py under accelerate with 2 CPU processes: a real process group (world size 2)."""
    model = tiny_chat_model(tmp_path / "tiny")
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{w} ->", "completion": " noun"}) + "\n"
                            for w in ("cat", "dog", "king", "queen", "man", "woman", "land", "war")))
    out = tmp_path / "run"
    accelerate = str(Path(PY).with_name("accelerate"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([accelerate, "launch", "--config_file", str(REPO / "recipes/accelerate/cpu_2proc.yaml"),
                        str(REPO / "recipes/sft.py"), "--model", str(model), "--train_file", str(data),
                        "--method", "lora", "--max_steps", "2", "--per_device_train_batch_size", "2",
                        "--output_dir", str(out)], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2 and m["steps"] == 2
    assert (out / "adapter_config.json").is_file()
    log = (out / "output.log").read_text()
    assert log.count("Fine-tune succeeded") == 1        # one writer under 2 processes
