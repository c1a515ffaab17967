"""Experiment tracking offline (issues 15 and 19): `--report_to tensorboard` and `--report_to trackio` work out of
the box; a logger that is unknown or not installed is one message and exit 2 before anything loads or is
written."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from hfrepro import hub
from hfrepro.config import check_loggers
from hfrepro.errors import UserError
from tests.conftest import REPO


def _args(*names, **kw):
    return SimpleNamespace(**{"report_to": list(names), "project": "huggingface", "run_name": None,
                              "output_dir": "runs/clm", **kw})


def test_offline_loggers_pass_and_name_the_run():
    a = _args("tensorboard", "trackio")
    check_loggers(a)
    assert a.project == "hfrepro" and a.run_name == "clm"
    b = _args("trackio", project="mine", run_name="given")
    check_loggers(b)
    assert b.project == "mine" and b.run_name == "given"  # what the user chose stays
    c = _args("tensorboard,trackio")  # one comma-separated value, as on a command line
    check_loggers(c)
    assert c.report_to == ["tensorboard", "trackio"]
    check_loggers(_args())  # report_to none -> []


@pytest.mark.parametrize("names,message,fix", [
    (["tensorbord"], "unknown logger(s) in --report_to: tensorbord", "tensorboard or trackio"),
    (["wandb"], "--report_to wandb: not installed", "pip install wandb"),
    (["trackio", "mlflow"], "--report_to mlflow: not installed", "pip install mlflow"),
])
def test_unknown_or_missing_loggers_are_refused(names, message, fix):
    if any(n in ("wandb", "mlflow") and importlib.util.find_spec(n) for n in names):
        pytest.skip("that logger is installed here")
    with pytest.raises(UserError) as e:
        check_loggers(_args(*names))
    assert message in e.value.what and fix in (e.value.fix or "")


def _env(tmp_path):
    return {**os.environ, "OMP_NUM_THREADS": "1", "HFREPRO_THREADS": "1", "TRACKIO_DIR": str(tmp_path / "trackio"),
            "PYTHONPATH": str(REPO)}


@pytest.fixture
def corpus(tmp_path):
    f = tmp_path / "corpus.txt"
    words = "the cat sat on the mat while a dog ran to the king and the queen in the old house".split()
    f.write_text("\n".join(" ".join(words[i % 7:] + words[: i % 7]) for i in range(200)), encoding="utf-8")
    return f


def test_a_missing_logger_stops_before_anything_is_written(tmp_path, corpus):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "hfrepro", "smoke", "--dataset", str(corpus), "--output_dir", str(out),
                        "--report_to", "tensorbord"], capture_output=True, text=True, env=_env(tmp_path), cwd=REPO,
                       timeout=300)
    assert r.returncode == 2 and "unknown logger(s) in --report_to: tensorbord" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_tensorboard_and_trackio_log_a_run_offline(tmp_path, corpus):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "hfrepro", "smoke", "--dataset", str(corpus), "--output_dir", str(out),
                        "--max_steps", "3", "--logging_steps", "1", "--report_to", "tensorboard,trackio"],
                       capture_output=True, text=True, env={**_env(tmp_path), "HF_HUB_OFFLINE": "1"}, cwd=REPO,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    events = list((out / "runs").rglob("events.out.tfevents.*"))
    assert events, "TensorBoard wrote nothing into the run folder"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert len(acc.Scalars("train/loss")) == 3
    # the dashboard's own listing (`trackio show --project hfrepro` opens it): project hfrepro, run named "run"
    ls = subprocess.run([str(Path(sys.executable).parent / "trackio"), "list", "runs", "--project", "hfrepro"],
                        capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert ls.returncode == 0 and "- run" in [x.strip() for x in ls.stdout.splitlines()], ls.stdout + ls.stderr
    assert any(p.startswith("runs/") and "tfevents" in p for p in hub.plan_upload(out).paths)  # Hub metrics tab
