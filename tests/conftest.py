"""Test setup: fixed threads, offline Hub, a private HF cache. Integration tests use the real asset cache
($HFREPRO_HOME, built by scripts/setup.sh) and are marked `integration`."""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

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
