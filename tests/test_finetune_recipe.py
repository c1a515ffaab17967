"""recipes/sft.py end to end on a tiny random Llama: the run folder is the model's repository, a re-run of a
finished command is a no-op, an interrupted run resumes from the Trainer's checkpoint, LoRA merge, head-only,
held-out task accuracy, and arguments refused before anything is written. Plus stage 7's training data."""

# pytest fixtures come from finetune_helpers (imported below), and tests name them as arguments:
# ruff: noqa: F811
import json

import pytest
import torch
from finetune_helpers import tiny_model_dir  # noqa: F401  (fixture)
from peft import AutoPeftModelForCausalLM
from transformers import AutoModelForCausalLM, TrainerCallback
from trl import SFTConfig

from hfrepro.cli import run_recipe
from hfrepro.config import RunArguments, parse_args
from hfrepro.errors import UserError
from hfrepro.fewshot.evaluator import build_prompt
from hfrepro.fewshot.tasks import load_task
from hfrepro.finetune import sft
from hfrepro.finetune.build_data import WORD_CLASS
from hfrepro.finetune.training_data import task_path, training_rows
from hfrepro.lora import LoraArguments
from hfrepro.recipes import sft as recipe

CHAT = [{"messages": [{"role": "user", "content": f"The {w} sat?"}, {"role": "assistant", "content": "On the mat."},
                      {"role": "user", "content": "And the dog?"}, {"role": "assistant", "content": "On the log."}]}
        for w in ("cat", "king", "queen", "man")]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def data(tmp_path):
    return _jsonl(tmp_path / "d.jsonl", [{"prompt": f"{w} ->", "completion": " noun"}
                                          for w in ("cat", "dog", "king", "queen")])


def _argv(model, data, out, *more):
    return ["--model", str(model), "--train_file", str(data), "--output_dir", str(out),
            "--per_device_train_batch_size", "2", "--logging_steps", "1", *more]


def test_full_run_folder_is_the_model_and_a_rerun_is_a_no_op(tiny_model_dir, data, tmp_path):
    out = tmp_path / "run"
    run_recipe("sft", _argv(tiny_model_dir, data, out, "--method", "full", "--max_steps", "2",
                            "--learning_rate", "1e-4"))
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 2 and m["method"] == "full" and m["tokens_seen"] > 0 and m["first_loss"] > 0
    assert m["flops_estimate"] == pytest.approx(m["flops_per_token"] * m["tokens_seen"])
    AutoModelForCausalLM.from_pretrained(out)                         # the run folder loads as a model
    assert (out / "config.yaml").read_text().count("max_steps: 2") == 1
    assert json.loads((out / "status.json").read_text())["status"] == "finished"
    log = (out / "output.log").read_text()
    assert "Estimated cost" in log and "Completed epoch" in log and "Fine-tune succeeded" in log
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name not in ("status.json", ".lock")}
    again = recipe.cli(_argv(tiny_model_dir, data, out, "--method", "full", "--max_steps", "2",
                             "--learning_rate", "1e-4"))
    assert again == m                                                 # the same command: nothing trained
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name not in ("status.json", ".lock")} == before
    with pytest.raises(UserError, match="different config"):
        recipe.cli(_argv(tiny_model_dir, data, out, "--method", "full", "--max_steps", "3"))


def test_interrupted_run_resumes_from_its_checkpoint(tiny_model_dir, data, tmp_path, monkeypatch):
    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                raise KeyboardInterrupt

    real = sft.progress_callback
    monkeypatch.setattr(sft, "progress_callback", lambda *a, **k: Kill())
    argv = _argv(tiny_model_dir, data, tmp_path / "r", "--method", "full", "--max_steps", "5",
                 "--save_strategy", "steps", "--save_steps", "1", "--save_total_limit", "2")
    with pytest.raises(KeyboardInterrupt):
        recipe.cli(argv)
    assert {p.name for p in (tmp_path / "r").glob("checkpoint-*")} == {"checkpoint-1", "checkpoint-2"}
    monkeypatch.setattr(sft, "progress_callback", real)
    m = recipe.cli(argv)                                              # the same command continues
    assert m["steps"] == 5 and m["resumed_from"].endswith("checkpoint-2")
    assert "Resuming from" in (tmp_path / "r" / "output.log").read_text()
    steps = [r["step"] for r in map(json.loads, (tmp_path / "r" / "log.jsonl").read_text().splitlines())
             if "loss" in r]
    assert steps == [1, 2, 3, 4, 5]                                   # each step logged once
    m2 = recipe.cli(argv + ["--resume_from_checkpoint", str(tmp_path / "r" / "checkpoint-4")])   # asked for
    assert m2["steps"] == 5 and m2["resumed_from"].endswith("checkpoint-4")


def test_lora_chat_merge_and_head(tiny_model_dir, tmp_path):
    out = tmp_path / "lora"
    m = recipe.cli(_argv(tiny_model_dir, _jsonl(tmp_path / "c.jsonl", CHAT), out, "--method", "lora",
                         "--max_steps", "2", "--merge"))
    assert m["assistant_only_loss"] and m["trainable_pct"] < 100
    AutoPeftModelForCausalLM.from_pretrained(out / "adapter")        # the adapter, loadable with plain peft
    merged = AutoModelForCausalLM.from_pretrained(out)               # merged weights: plain transformers
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert "{% generation %}" not in (out / "chat_template.jinja").read_text()   # the template as shipped
    assert json.loads((out / "tokenizer_config.json").read_text())["pad_token"] == "<|im_end|>"

    out = tmp_path / "head"
    rows = [{"prompt": f"{w} ->", "completion": " noun"} for w in ("cat", "dog", "king", "queen")]
    m = recipe.cli(_argv(tiny_model_dir, _jsonl(tmp_path / "p.jsonl", rows), out, "--method", "head",
                         "--max_steps", "2", "--learning_rate", "1e-2"))
    assert m["head_untied"] and m["head_modules"] == ["lm_head", "norm"]
    head, base = AutoModelForCausalLM.from_pretrained(out), AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not head.config.tie_word_embeddings
    assert not torch.equal(head.lm_head.weight, head.model.embed_tokens.weight)   # the head moved...
    assert torch.equal(head.model.embed_tokens.weight, base.model.embed_tokens.weight)  # ...the input did not
    card = (out / "README.md").read_text()
    assert "head-only" in card and "trainable_params" in card


def test_heldout_task_accuracy(tiny_model_dir, tmp_path):
    out = tmp_path / "wc"
    m = recipe.cli(["--model", str(tiny_model_dir), "--train_file", "word_class", "--max_train_examples", "8",
                    "--method", "lora", "--max_steps", "1", "--eval_task", "word_class", "--eval_limit", "4",
                    "--save_model", "false", "--output_dir", str(out)])
    assert m["examples"] == 8 and m["heldout_n"] == 4 and 0.0 <= m["heldout_accuracy"] <= 1.0
    samples = [json.loads(x) for x in (out / "heldout_samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4 and samples[0]["prompt"].endswith(" ->") and "Give the part" not in samples[0]["prompt"]
    assert "model_dir" not in m and not list(out.glob("*.safetensors"))          # --save_model false


def test_refused_before_anything_is_written(tiny_model_dir, data, tmp_path):
    for more, msg in ((["--method", "prefix"], "unknown method"), (["--method", "full", "--merge"], "--merge only"),
                      (["--train_file", str(tmp_path / "nope.jsonl")], "training file not found"),
                      (["--eval_task", "no_such_task"], "no_such_task")):
        out = tmp_path / msg.replace(" ", "-")
        with pytest.raises(UserError, match=msg):
            recipe.cli(_argv(tiny_model_dir, data, out, *more))
        assert not out.exists()


def test_config_takes_trl_and_short_model_names(tmp_path):
    for key in ("model_name_or_path", "model"):
        f = tmp_path / f"{key}.yaml"
        f.write_text(f"{key}: some/model\nmax_steps: 3\nbf16: false\n")
        script_args, training_args, _, _ = parse_args((recipe.ScriptArguments, SFTConfig, LoraArguments,
                                                       RunArguments), argv=["--config", str(f)])
        assert script_args.model_name_or_path == "some/model" and training_args.max_steps == 3
    for budget in ("tiny", "default", "full"):      # every budget of the recipe parses
        parse_args((recipe.ScriptArguments, SFTConfig, LoraArguments, RunArguments), recipe="sft",
                   argv=["--budget", budget])


def test_word_class_training_rows():
    """A training example is exactly what stage 6's evaluator asks a fine-tuned model, then the answer."""
    rows = training_rows("word_class")
    words = [json.loads(x) for x in WORD_CLASS.read_text().splitlines()]
    train = [w for w in words if w["split"] == "train"]
    test = {w["word"] for w in words if w["split"] == "test"}
    assert len(rows) == len(train) == 600 and len(test) == 1080 and not test & {w["word"] for w in train}
    task = load_task(task_path("word_class"))
    for row, src in zip(rows[:5], train):
        assert row == {"prompt": f"{src['word']} ->", "completion": " " + src["pos"]}
        assert build_prompt(task, [], src, instruction=False) == row["prompt"]
    assert build_prompt(task, [], train[0]).startswith("Give the part of speech")   # the base model's prompt
    assert training_rows("word_class", limit=512) == rows[:512]
