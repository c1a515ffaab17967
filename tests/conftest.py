"""Test setup: fixed threads, offline Hub, a private HF cache. Integration tests use the real asset cache
($HFREPRO_HOME, built by scripts/setup.sh) and are marked `integration`."""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HFREPRO_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A private Hugging Face cache: other processes on this machine may share ~/.cache/huggingface.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="hfrepro-test-hf-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PY = sys.executable


@pytest.fixture(autouse=True, scope="session")
def _threads():
    import torch
    torch.set_num_threads(1)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def run_cli(*args, env=None, timeout=600, cwd=None):
    """Run `python -m hfrepro ARGS` in a subprocess; returns CompletedProcess (text)."""
    import subprocess
    e = {**os.environ, **(env or {})}
    return subprocess.run([PY, "-m", "hfrepro", *map(str, args)], capture_output=True, text=True, env=e,
                          timeout=timeout, cwd=cwd or REPO)


CRASH_SIGNALS = ("SIGSEGV", "SIGBUS", "SIGABRT")


def killed_by_signal(stderr: str) -> bool:
    """torchrun's report of a child that died by a crash signal (not an exception, not our own exit code)."""
    return any(f"({sig})" in stderr for sig in CRASH_SIGNALS)


def launch_two(cmd: list, *, fresh: Path | None = None, reset: Callable[[], None] | None = None, **kwargs):
    """Run a multi-process `accelerate launch` command (subprocess.run with captured text output). A launch in
    which a process died by a crash signal inside torch's CPU collectives is made once more, with a warning: seen
    in the project's CI in 3 different tests (SIGSEGV in FSDP's PPO, 2026-12-04; SIGABRT, "terminate called
    without an active exception", in the two-process few-shot run, 2026-12-05), never in the same test run alone
    here. Before the second launch `fresh` (the run's output folder) is removed and `reset` called (to put back
    what the first launch started from). Any other failure, or a second crash, is returned as it is (the caller
    asserts)."""
    import subprocess
    import warnings

    r = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if r.returncode != 0 and killed_by_signal(r.stderr):
        warnings.warn(f"a process was killed by a signal; launched again\n{r.stderr[-2000:]}")
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
        if reset is not None:
            reset()
        r = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    return r
