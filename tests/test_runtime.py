"""The run-time floor: run folders (lock, resume, finish, overwrite), checkpoints, the NaN guard, CPU defaults."""

import json
import math

import pytest

from hfrepro import runtime
from hfrepro.errors import UserError
from hfrepro.runtime import Run, TrainingDiverged, check_finite, last_checkpoint, trainer_callbacks


def _checkpoint(folder, step, ok=True):
    ck = folder / f"checkpoint-{step}"
    ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text(json.dumps({"global_step": step}) if ok else '{"global_st')
    return ck


def test_fresh_run_records_config_and_status(tmp_path):
    run = Run.begin(tmp_path / "r", {"lr": 1})
    assert not run.finished and run.resume_from is None and run.is_main
    assert (tmp_path / "r" / "config.yaml").read_text() == "lr: 1\n"
    assert json.loads((tmp_path / "r" / "status.json").read_text())["status"] == "running"
    run.finish({"loss": 0.5})
    st = json.loads((tmp_path / "r" / "status.json").read_text())
    assert st["status"] == "finished" and run.metrics() == {"loss": 0.5}


def test_finished_run_again_changes_nothing_but_last_checked(tmp_path):
    out = tmp_path / "r"
    Run.begin(out, {"lr": 1}).finish({"loss": 0.5})
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    again = Run.begin(out, {"lr": 1, "output_dir": "elsewhere", "report_to": "none"})  # where/how: not the result
    assert again.finished and again.metrics() == {"loss": 0.5}
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    changed = {k for k in before if before[k] != after[k]}
    assert changed <= {"status.json"}
    st_b, st_a = json.loads(before["status.json"]), json.loads(after["status.json"])
    assert {k: v for k, v in st_b.items() if k != "last_checked"} == {k: v for k, v in st_a.items()
                                                                      if k != "last_checked"}


def test_other_config_refused_overwrite_starts_afresh(tmp_path):
    out = tmp_path / "r"
    Run.begin(out, {"lr": 1}).finish({"loss": 0.5})
    with pytest.raises(UserError, match="different config.*lr"):
        Run.begin(out, {"lr": 2})
    _checkpoint(out, 10)
    run = Run.begin(out, {"lr": 2}, overwrite=True)
    assert not run.finished and run.resume_from is None
    assert not (out / "checkpoint-10").exists() and not (out / "metrics.json").exists()
    run.close()
    again = Run.begin(out, {"lr": 2}, overwrite=True)  # the same config: --overwrite still retrains
    assert not again.finished


def test_unfinished_run_resumes_from_last_complete_checkpoint(tmp_path, capsys):
    out = tmp_path / "r"
    Run.begin(out, {"lr": 1}).close()
    _checkpoint(out, 5)
    _checkpoint(out, 10, ok=False)  # killed while saving
    (out / "log.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (2, 4, 6, 8)))
    run = Run.begin(out, {"lr": 1})
    assert run.resume_from == str(out / "checkpoint-5")
    assert "checkpoint-10 is incomplete or corrupt" in capsys.readouterr().err
    assert [r["step"] for r in run.read_log()] == [2, 4]  # rows after the checkpoint are logged again


def test_unfinished_run_without_a_checkpoint_starts_its_log_afresh(tmp_path):
    out = tmp_path / "r"
    Run.begin(out, {"lr": 1}).close()  # killed before its first checkpoint, after logging two steps
    (out / "log.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2)))
    run = Run.begin(out, {"lr": 1})
    assert run.resume_from is None and run.read_log() == []  # the rerun logs steps 1 and 2 again, not twice
    run.log({"step": 1, "loss": 0.5})
    assert [r["step"] for r in run.read_log()] == [1]


def test_resume_from_checkpoint_argument(tmp_path):
    a = tmp_path / "a"
    Run.begin(a, {"lr": 1}).close()
    ck = _checkpoint(a, 7)
    b = Run.begin(tmp_path / "b", {"lr": 1, "max_steps": 20}, resume_from_checkpoint=str(ck))
    assert b.resume_from == str(ck)
    b.close()
    assert Run.begin(a, {"lr": 1}, resume_from_checkpoint="true").resume_from == str(ck)
    with pytest.raises(UserError, match="not a complete checkpoint"):
        Run.begin(tmp_path / "c", {"lr": 1}, resume_from_checkpoint=str(tmp_path / "nope"))
    with pytest.raises(UserError, match="no complete checkpoint"):
        Run.begin(tmp_path / "d", {"lr": 1}, resume_from_checkpoint=True)


def test_one_writer_per_folder(tmp_path):
    first = Run.begin(tmp_path / "r", {"lr": 1})
    with pytest.raises(UserError, match=r"being written by another run \(pid \d+\)"):
        Run.begin(tmp_path / "r", {"lr": 1})
    first.close()
    Run.begin(tmp_path / "r", {"lr": 1}).close()


def test_output_folder_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        Run.begin(f, {"lr": 1})


def test_last_checkpoint_picks_newest_complete(tmp_path):
    assert last_checkpoint(tmp_path) is None
    _checkpoint(tmp_path, 2)
    _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 9)
    assert last_checkpoint(tmp_path).endswith("checkpoint-10")


def test_nan_guard_stops_with_clear_message(tmp_path):
    guard = trainer_callbacks()[0]

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


def test_cpu_defaults_have_no_bf16():
    d = runtime.training_defaults()
    assert d["bf16"] is False and d["activation_checkpointing"] is False and d["report_to"] == "none"
    assert d["use_cpu"] is True


def test_cpu_sane_turns_off_trl_defaults():
    from trl import SFTConfig

    cfg = SFTConfig(output_dir="/tmp/hfrepro-sft-cfg", bf16=False)
    assert cfg.activation_checkpointing  # TRL's default
    runtime.cpu_sane(cfg)
    assert not cfg.activation_checkpointing and not cfg.gradient_checkpointing and cfg.use_cpu
    assert cfg.include_num_input_tokens_seen == "non_padding"


@pytest.mark.parametrize("env, flushed", [({}, True), ({"HFREPRO_DENORMALS": "keep"}, False)])
def test_setup_flushes_denormals_unless_asked_to_keep_them(env, flushed):
    """runtime.setup turns denormal floats into zeros (x86 FTZ/DAZ), in torch's worker threads too; in a fresh
    process, since the setting belongs to the process's threads."""
    import os
    import subprocess
    import sys

    code = ("import torch; from hfrepro import runtime; runtime.setup(seed=0, threads=2); "
            "x = torch.full((100_000,), 1e-39); print(float((x * 0.5).max()))")
    env = {**{k: v for k, v in os.environ.items() if k != "HFREPRO_DENORMALS"}, **env}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    value = float(out.stdout.strip().splitlines()[-1])
    assert (value == 0.0) == flushed, value


def test_cpu_precision_bf16_is_mixed_precision_and_fp32_turns_it_off():
    """--precision bf16: torch's CPU autocast for the whole process (matrix products in bfloat16, the weights
    and their gradients in fp32, no cached weight copies); fp32 turns it off again."""
    import torch

    from hfrepro import runtime

    lin = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    try:
        assert runtime.set_cpu_precision("bf16") == "bf16"
        assert torch.is_autocast_enabled("cpu") and not torch.is_autocast_cache_enabled()
        y = lin(x)
        assert y.dtype == torch.bfloat16 and lin.weight.dtype == torch.float32
        y.float().sum().backward()
        assert lin.weight.grad.dtype == torch.float32
        # no stale copy after an optimizer step: the next product uses the new weights
        with torch.no_grad():
            lin.weight.mul_(2.0)
        assert torch.allclose(lin(x).float(), (x @ lin.weight.T + lin.bias), rtol=2e-2, atol=2e-2)
    finally:
        runtime.set_cpu_precision("fp32")
    assert not torch.is_autocast_enabled("cpu") and torch.is_autocast_cache_enabled()
    assert lin(x).dtype == torch.float32


def test_unknown_precision_is_refused_with_the_choices():
    from hfrepro import runtime
    from hfrepro.errors import UserError

    with pytest.raises(UserError) as e:
        runtime.set_cpu_precision("fp8")
    assert "fp8" in e.value.what and "fp32, bf16" in e.value.fix
