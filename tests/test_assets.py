"""The asset cache: atomic builds, corruption detection, missing sources, and the real embedded assets."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from hfrepro import assets
from hfrepro.assets import sources as S
from hfrepro.errors import AssetMissing, UserError
from tests.conftest import run_cli


@dataclass(frozen=True)
class FakeSource(S.Source):
    ok: bool = True

    def present(self):
        return self.ok

    def path(self):
        return Path("/nonexistent")

    def provide_cmd(self):
        return f"apt-get download {self.name}"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HFREPRO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _asset(name="toy", rows=None, ok=True):
    return assets.DatasetAsset(name=name, kind="dataset", description="toy", licence="x", language=("en",),
                               sources=(FakeSource(f"src-{name}", ok=ok),),
                               rows=rows or (lambda: [{"text": f"line {i}"} for i in range(50)]))


def test_build_then_ready_then_corrupted(home):
    a = _asset()
    assert assets.check(a) == "buildable"
    assert assets.build_one(a) == "built"
    assert assets.check(a) == "ready"
    assert assets.build_one(a) == "ready"  # idempotent
    marker = assets.read_marker(a)
    assert marker["rows"] == {"train": 40, "validation": 5, "test": 5}
    victim = next(p for p in a.dir.rglob("*.arrow"))
    victim.write_bytes(b"garbage")
    assert assets.check(a).startswith("corrupted")
    assets.ASSETS[a.name] = a
    try:
        with pytest.raises(UserError, match="corrupted") as e:
            assets.path(a.name)
        assert "--force" in e.value.fix
        assert assets.build_one(a, force=True) == "built" and assets.check(a) == "ready"
    finally:
        del assets.ASSETS[a.name]


def test_failed_build_leaves_nothing(home):
    def boom():
        raise RuntimeError("killed half-way")
    a = _asset(rows=boom)
    with pytest.raises(RuntimeError):
        assets.build_one(a)
    assert not a.dir.exists() and assets.check(a) == "buildable"
    assert not list(a.dir.parent.glob(f".{a.name}.tmp-*"))


def test_missing_source_is_a_clear_message(home):
    a = _asset(ok=False)
    assert assets.check(a) == "source missing: src-toy"
    with pytest.raises(AssetMissing) as e:
        assets.build_one(a)
    assert "apt-get download src-toy" in e.value.fix


def test_unknown_asset_name_suggests():
    with pytest.raises(UserError, match="unknown asset 'shakespear'.*did you mean shakespeare"):
        assets.get("shakespear")


def test_cli_errors_exit_2_without_traceback(home):
    r = run_cli("assets", "build", "no-such-asset")
    assert r.returncode == 2
    assert "unknown asset 'no-such-asset'" in r.stderr and "Traceback" not in r.stderr


def test_debian_source_without_apt(home, monkeypatch):
    monkeypatch.setattr(S.shutil, "which", lambda name: None)
    with pytest.raises(AssetMissing, match="no apt-get") as e:
        S.DebianPackage("x", package="bible-kjv").fetch()
    assert "hfrepro assets fetch" in e.value.fix


# --- the real assets (built by scripts/setup.sh) --------------------------------------------------------

@pytest.mark.integration
def test_every_asset_ready_after_setup():
    states = {a.name: st for a, st in assets.status()}
    assert all(st == "ready" for st in states.values()), states


@pytest.mark.integration
def test_smollm2_loads_with_plain_transformers_and_knows_paris():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = assets.path("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.dtype == torch.float32 and tok.chat_template
    assert (path / "model.safetensors").is_file() and (path / "README.md").is_file()
    ids = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])


@pytest.mark.integration
def test_minilm_encoder_loads():
    from transformers import AutoModel, AutoTokenizer
    path = assets.path("minilm-l6")
    enc = AutoModel.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert enc(**tok("hello world", return_tensors="pt")).last_hidden_state.shape[-1] == 384


@pytest.mark.integration
def test_kill_half_way_then_rebuild(tmp_path):
    """Kill `hfrepro assets build` mid-way: no half-built entry loads; running it again completes."""
    home = tmp_path / "home"
    home.mkdir()
    os.symlink(assets.S.sources_dir(), home / "sources")  # reuse the fetched raw sources
    env = {**os.environ, "HFREPRO_HOME": str(home)}
    names = ["lee", "lo-help-en-fr", "wordsim353"]
    proc = subprocess.Popen([sys.executable, "-m", "hfrepro", "assets", "build", *names], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((home / "datasets").glob(".lo-help-en-fr.tmp-*")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    entry = home / "datasets" / "lo-help-en-fr"
    assert not entry.exists(), "a killed build must not leave a visible entry"
    r = subprocess.run([sys.executable, "-m", "hfrepro", "assets", "build", *names], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    os.environ["HFREPRO_HOME"], old = str(home), os.environ.get("HFREPRO_HOME")
    try:
        from hfrepro import data
        assert all(assets.check(assets.get(n)) == "ready" for n in names)
        assert data.load("lo-help-en-fr", split="test").num_rows > 1000
        assert not list((home / "datasets").glob(".*.tmp-*"))
    finally:
        if old is None:
            del os.environ["HFREPRO_HOME"]
        else:
            os.environ["HFREPRO_HOME"] = old


@pytest.mark.integration
def test_corrupted_entry_via_cli(tmp_path):
    home = tmp_path / "home"
    env = {"HFREPRO_HOME": str(home)}
    assert run_cli("assets", "build", "wordsim353", env=env).returncode == 0
    next((home / "datasets" / "wordsim353").rglob("*.arrow")).write_bytes(b"truncated")
    r = run_cli("assets", "path", "wordsim353", env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "corrupted" in r.stderr and "hfrepro assets build --force wordsim353" in r.stderr
    listing = run_cli("assets", env=env).stdout
    assert "| wordsim353 | dataset | corrupted" in listing
