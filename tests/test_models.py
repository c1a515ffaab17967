"""Model names: embedded, local folders, Hub ids -- and an immediate, useful failure without the Hub."""

import os

import pytest

from hfrepro import hubenv
from hfrepro.errors import UserError
from hfrepro.models import resolve


def test_hub_id_offline_fails_at_once_naming_embedded_models():
    with pytest.raises(UserError) as e:
        resolve("gpt2")
    assert "offline mode is set" in e.value.what
    assert "smollm2-135m-instruct" in e.value.fix


def test_unreachable_endpoint_is_detected_without_offline_flag(monkeypatch):
    for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    hubenv.hub_reachable.cache_clear()
    try:
        with pytest.raises(UserError, match="is not reachable") as e:
            resolve("org/some-model")
        assert "smollm2-135m-instruct" in e.value.fix
        assert os.environ["HF_HUB_OFFLINE"] == "1"  # the clients now fail fast too
    finally:
        hubenv.hub_reachable.cache_clear()


def test_bad_names_and_paths(tmp_path):
    with pytest.raises(UserError, match="not an embedded name"):
        resolve("not a model name!")
    with pytest.raises(UserError, match="model folder not found"):
        resolve(str(tmp_path / "missing" / "dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        resolve(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="is a dataset, not a model"):
        resolve("shakespeare")


def test_run_folder_resolves_to_its_model(tmp_path):
    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "model" / "config.json").write_text("{}")
    assert resolve(str(tmp_path / "run")) == str(tmp_path / "run" / "model")
