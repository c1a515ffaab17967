"""Run integrity, as a user meets it: a mistake is one message and exit code 2 before anything loads; a refused
start blocks nothing; one writer per folder; `hfrepro reproduce` owns its children. (The run-folder contract
itself: tests/test_runtime.py; resume after a kill and no-op re-runs: tests/test_smoke_recipe.py.)"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hfrepro.config import RunArguments, parse_args
from hfrepro.errors import UserError
from hfrepro.runtime import Run, whole_run_loss
from tests.conftest import REPO


def _env(**kw):
    return {**os.environ, "OMP_NUM_THREADS": "1", "HFREPRO_THREADS": "1", **kw}


def _hfrepro(*args, cwd=None, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "hfrepro", *map(str, args)], capture_output=True, text=True,
                          env=env or _env(), cwd=cwd or REPO, timeout=timeout)


def _one_message(r):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and r.stderr.count("error:") == 1 and "fix:" in r.stderr, r.stderr


# --- values checked before any model loads ----------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be at least 1, not 0"),
    (["--max_steps", "-3"], "--max_steps must be at least 1 (or -1"),
    (["--learning_rate", "-0.1"], "--learning_rate must be a positive number"),
    (["--learning_rate", "nan"], "--learning_rate must be a positive number"),
    (["--threads", "-1"], "--threads must be 0 or more"),
])
def test_out_of_range_numbers_are_refused_by_name(tmp_path, args, message):
    from transformers import TrainingArguments

    with pytest.raises(UserError, match=message.replace("(", r"\(")) as e:
        parse_args((TrainingArguments, RunArguments), argv=["--output_dir", str(tmp_path), *args])
    assert e.value.where == "the command line" and e.value.fix


def test_out_of_range_in_a_yaml_names_the_file(tmp_path):
    from transformers import TrainingArguments

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"output_dir: {tmp_path}\nwarmup_steps: -5\n")
    with pytest.raises(UserError, match="--warmup_steps must be 0 or more") as e:
        parse_args(TrainingArguments, argv=["--config", str(cfg)])
    assert e.value.where == str(cfg)


def test_a_recipe_refuses_bad_values_in_one_message_without_loading_anything(tmp_path):
    out = tmp_path / "run"
    r = _hfrepro("smoke", "--output_dir", out, "--per_device_train_batch_size", "0")
    _one_message(r)
    assert not out.exists(), "nothing may be written for a refused start"
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("learning_rate: [1, 2]\n")
    _one_message(_hfrepro("smoke", "--config", cfg, "--output_dir", out))


def test_output_folder_that_is_a_file_or_read_only(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    r = _hfrepro("smoke", "--budget", "tiny", "--output_dir", f)
    _one_message(r)
    assert "is a file" in r.stderr
    r = _hfrepro("smoke", "--budget", "tiny", "--output_dir", "/proc/hfrepro-cannot-be-made/run")
    _one_message(r)
    assert "cannot create the output folder" in r.stderr
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders: the read-only case needs a normal user")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    _one_message(_hfrepro("smoke", "--budget", "tiny", "--output_dir", ro / "run"))


# --- a refused or failed start blocks nothing -----------------------------------------------------------

def test_a_start_that_failed_before_producing_anything_does_not_block_the_corrected_command(tmp_path):
    out = tmp_path / "r"
    first = Run.begin(out, {"dataset": "nosuch"})  # e.g. the dataset name turned out wrong after begin
    first.close()
    assert (out / "config.yaml").is_file()
    second = Run.begin(out, {"dataset": "shakespeare"})
    assert not second.finished and "shakespeare" in (out / "config.yaml").read_text()
    second.finish({"loss": 1.0})
    with pytest.raises(UserError, match="different config"):  # once it holds results, it is protected
        Run.begin(out, {"dataset": "nosuch"})


@pytest.mark.integration
def test_unknown_dataset_then_the_corrected_command(tmp_path):
    out = tmp_path / "run"
    r = _hfrepro("smoke", "--budget", "tiny", "--dataset", "nosuch", "--output_dir", out)
    _one_message(r)
    r = _hfrepro("smoke", "--budget", "tiny", "--output_dir", out)
    assert r.returncode == 0, r.stderr[-2000:]


# --- whole-run metrics after a resume ---------------------------------------------------------------------

def test_whole_run_loss_weights_each_logged_loss_by_its_steps():
    rows = [{"step": 10, "loss": 4.0}, {"step": 20, "loss": 2.0}, {"step": 25, "loss": 1.0},
            {"step": 25, "train_loss": 9.0}, {"time": 1}]
    assert whole_run_loss(rows) == pytest.approx((4 * 10 + 2 * 10 + 1 * 5) / 25)
    assert whole_run_loss([]) is None


def test_a_resumed_run_reports_the_loss_of_the_whole_run(tmp_path):
    out = tmp_path / "r"
    Run.begin(out, {"lr": 1}).close()
    ck = out / "checkpoint-10"
    ck.mkdir()
    (ck / "trainer_state.json").write_text(json.dumps({"global_step": 10}))
    (out / "log.jsonl").write_text("".join(json.dumps({"step": s, "loss": 3.0}) + "\n" for s in (5, 10, 15)))
    run = Run.begin(out, {"lr": 1})
    assert run.resume_from == str(ck)
    run.log({"step": 20, "loss": 1.0})
    m = run.finish({"train_loss": 1.0})  # what the Trainer reports: the resumed steps only
    assert m["train_loss"] == pytest.approx((3.0 * 10 + 1.0 * 10) / 20)


# --- one writer per folder --------------------------------------------------------------------------------

@pytest.mark.integration
def test_two_runs_into_one_folder_never_interleave(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "hfrepro", "smoke", "--budget", "tiny", "--output_dir", str(out),
           "--max_steps", "1000000", "--save_steps", "10000000"]
    first = subprocess.Popen(cmd, env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "log.jsonl").is_file():
            time.sleep(0.05)
        second = _hfrepro(*cmd[3:])
        _one_message(second)
        assert f"pid {first.pid}" in second.stderr
    finally:
        first.kill()
        first.wait()


# --- hfrepro reproduce owns its children ------------------------------------------------------------------

def test_reproduce_out_folder_is_locked(tmp_path):
    from hfrepro.runtime import lock_folder, unlock_folder

    out = tmp_path / "rep"
    out.mkdir()
    fd = lock_folder(out)
    try:
        r = _hfrepro("reproduce", "--stages", "embeddings", "--budget", "tiny", "--out", out)
        _one_message(r)
        assert "being written by another run" in r.stderr
    finally:
        unlock_folder(fd)


@pytest.mark.integration
def test_reproduce_interrupted_stops_its_stage_and_reports_nothing_after(tmp_path):
    out = tmp_path / "rep"
    p = subprocess.Popen([sys.executable, "-m", "hfrepro", "reproduce", "--stages", "embeddings", "--budget",
                          "tiny", "--out", str(out)], env=_env(), cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and not list((out / "embeddings").glob("*/config.yaml")):
        time.sleep(0.1)
    assert list((out / "embeddings").glob("*/config.yaml")), "the stage's recipe started"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    time.sleep(3)  # nothing may write "ok" after the parent said "interrupted"
    assert json.loads((out / "embeddings" / "result.json").read_text())["status"] == "interrupted"
    assert not (out / "REPORT.md").exists()
    r = subprocess.run(["pgrep", "-f", f"--out {out}"], capture_output=True, text=True)
    assert r.stdout.strip() == "", "no stage process is left running"


@pytest.mark.integration
def test_reproduce_with_a_missing_asset_says_why_and_exits_2(tmp_path):
    out = tmp_path / "rep"
    r = _hfrepro("reproduce", "--stages", "embeddings", "--budget", "tiny", "--out", out,
                 env=_env(HFREPRO_HOME=str(tmp_path / "empty-cache")), timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "fix:" in r.stderr and "hfrepro assets" in r.stderr
    report = (out / "REPORT.md").read_text()
    assert "**Stage failed:**" in report and "Fix:" in report


def test_a_full_disk_is_one_message_and_exit_code_3_not_a_traceback(capsys, monkeypatch):
    import errno

    from hfrepro.errors import EXIT_DISK_FULL, disk_full, run_main

    enospc = OSError(errno.ENOSPC, "No space left on device")
    try:  # the way the seed-2 walk met it: a library's own error, raised while the OSError was being handled
        try:
            raise enospc
        except OSError:
            raise RuntimeError("Error while serializing: I/O error") from None
    except RuntimeError as e:
        wrapped = e
    assert disk_full(enospc) and disk_full(wrapped)
    assert disk_full(RuntimeError("I/O error: No space left on device (os error 28)"))
    assert not disk_full(OSError(errno.EACCES, "Permission denied")) and not disk_full(ValueError("x"))

    def full():
        raise enospc
    monkeypatch.delenv("HFREPRO_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stop:
        run_main(full)
    err = capsys.readouterr().err
    assert stop.value.code == EXIT_DISK_FULL == 3
    assert "the disk is full" in err and "run the same command again" in err and "Traceback" not in err

    def bug():
        raise OSError(errno.EACCES, "Permission denied")
    with pytest.raises(OSError):  # anything else is a bug and keeps its traceback
        run_main(bug)
