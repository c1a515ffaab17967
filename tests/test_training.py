"""Shared training plumbing: run folders, resume bookkeeping, the NaN guard, loop checkpoints."""

import math

import pytest

from hfrepro.errors import UserError
from hfrepro.training import (RunDir, TrainingDiverged, callbacks, check_finite, last_checkpoint,
                              load_loop_checkpoint, save_loop_checkpoint, training_defaults)


def test_rundir_same_config_resumes_other_config_refused(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.start({"lr": 1, "output_dir": "a"}) is False
    assert run.start({"lr": 1, "output_dir": "b"}) is True  # output_dir does not change what is trained
    with pytest.raises(UserError, match="different config.*lr"):
        run.start({"lr": 2})
    run.write_metrics({"a": 1})
    run.write_metrics({"b": 2})
    assert run.metrics() == {"a": 1, "b": 2}
    (run.path / "model").mkdir()
    assert run.start({"lr": 2}, overwrite=True) is False
    assert not (run.path / "model").exists() and not run.metrics_path.exists()


def test_nan_guard_stops_with_clear_message(tmp_path):
    guard = callbacks()[0]

    class S:
        global_step = 7

    class Args:
        output_dir = str(tmp_path)

    guard.on_log(Args, S, None, logs={"loss": 1.0})
    with pytest.raises(TrainingDiverged, match="loss is nan at step 7") as e:
        guard.on_log(Args, S, None, logs={"loss": math.nan})
    assert "learning rate" in e.value.fix
    with pytest.raises(TrainingDiverged):
        check_finite(float("inf"), 3, "here")


def test_loop_checkpoint_roundtrip(tmp_path):
    import torch
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    for step in (1, 2, 3):
        save_loop_checkpoint(tmp_path / "ck", model, opt, step, extra={"loss": 0.5})
    assert last_checkpoint(tmp_path / "ck").endswith("checkpoint-3")
    assert len(list((tmp_path / "ck").glob("checkpoint-*"))) == 2  # keep=2
    other = torch.nn.Linear(4, 2)
    opt2 = torch.optim.AdamW(other.parameters(), lr=0.1)
    state = load_loop_checkpoint(tmp_path / "ck", other, opt2)
    assert state["step"] == 3 and state["loss"] == 0.5
    assert torch.equal(other.weight, model.weight)
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_cpu_defaults_have_no_bf16():
    d = training_defaults()
    assert d["bf16"] is False and d["activation_checkpointing"] is False and d["report_to"] == "none"
    assert d["use_cpu"] is True


def test_cpu_sane_turns_off_trl_defaults():
    from trl import SFTConfig

    from hfrepro.training import cpu_sane
    cfg = SFTConfig(output_dir="/tmp/hfrepro-sft-cfg", bf16=False)
    assert cfg.activation_checkpointing  # TRL's default
    cpu_sane(cfg)
    assert not cfg.activation_checkpointing and not cfg.gradient_checkpointing and cfg.use_cpu
