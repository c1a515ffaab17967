"""Pushing through huggingface_hub's real HfApi to a local FakeHub (tests/hubfakes.py): what one push uploads,
and that every way it can fail is caught before anything is sent."""

import json
import pickle

import pytest
import yaml
from conftest import run_cli
from hubfakes import FakeHub

from hfrepro import cards, hub
from hfrepro.errors import UserError

TOKEN = "hf_hfreproFAKEtokenDoNotLeak0123456789"


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    with FakeHub(tmp_path / "hub", token=TOKEN) as h:
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            monkeypatch.delenv(v, raising=False)
        monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield h


@pytest.fixture
def run_folder(tmp_path):
    """A run folder as a recipe writes it: the model (tiny fake weights) and its card, the run's record, the lock,
    and a Trainer checkpoint."""
    import numpy as np
    from safetensors.numpy import save_file

    run = tmp_path / "run"
    model = run
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, str(model / "model.safetensors"))
    (model / "tokenizer.json").write_text("{}")
    (model / ".scratch").write_text("x")
    cards.write_model_card(model, title="tiny", license="mit", metrics={"final_loss": 1.0}, config={"lr": 1})
    (run / "config.yaml").write_text(yaml.safe_dump({"lr": 1}))
    (run / "metrics.json").write_text(json.dumps({"final_loss": 1.0}))
    (run / "log.jsonl").write_text('{"loss": 1.0}\n')
    (run / "status.json").write_text('{"status": "finished"}')
    (run / ".lock").write_text("")
    ck = run / "checkpoint-1"
    ck.mkdir(parents=True)
    (ck / "optimizer.pt").write_bytes(b"PK\x03\x04junk")
    (ck / "model.safetensors").write_bytes(b"x")
    return run


def _sent(h: FakeHub) -> list:
    return [r for r in h.requests if r[0] in ("POST", "DELETE") and "validate-yaml" not in r[1]]


def test_push_run_folder_is_one_commit_without_checkpoints(fake_hub, run_folder):
    req = hub.validate_push("alice/tiny", private=True)
    url = hub.push_folder(run_folder, req)
    assert len(fake_hub.commits) == 1, "one push must be one commit"
    c = fake_hub.commits[0]
    assert c["repo_id"] == "alice/tiny" and c["repo_type"] == "model" and url.endswith(_head(fake_hub, c))
    assert sorted(c["files"]) == ["README.md", "config.json", "config.yaml", "log.jsonl", "metrics.json",
                                  "model.safetensors", "tokenizer.json"]
    assert fake_hub.created == [("model", "alice/tiny", "private")]
    readme = c["files"]["README.md"].decode()
    assert 'from_pretrained("alice/tiny")' in readme and cards.REPO_PLACEHOLDER not in readme
    assert (run_folder / "README.md").read_text().count(cards.REPO_PLACEHOLDER) > 0  # disk untouched
    assert not any(TOKEN.encode() in data for data in c["files"].values())
    assert (fake_hub.repo_dir("model", "alice/tiny") / "model.safetensors").is_file()

    # pushing again to the existing repo: a second commit, no second create
    (run_folder / "metrics.json").write_text(json.dumps({"final_loss": 0.5}))
    hub.push_folder(run_folder, req)
    assert len(fake_hub.commits) == 2 and len(fake_hub.created) == 1
    assert b"0.5" in fake_hub.commits[1]["files"]["metrics.json"]


def _head(h, c):
    import subprocess
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=h.repo_dir(c["repo_type"], c["repo_id"]),
                          capture_output=True, text=True).stdout.strip()


def test_repo_id_without_namespace_gets_the_token_user(fake_hub, monkeypatch):
    assert hub.validate_push("tiny").repo_id == "alice/tiny"
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # concerns dataset downloads, not pushes
    assert hub.validate_push("hfrepro-org/tiny").repo_id == "hfrepro-org/tiny"


CASES = {  # name -> (setup(monkeypatch, hub), repo id, expected message part)
    "bad repo id": (lambda mp, h: None, "alice/bad id", "invalid Hub repo id"),
    "double dash": (lambda mp, h: None, "alice/a--b", "invalid Hub repo id"),
    "no token": (lambda mp, h: mp.delenv("HF_TOKEN"), "alice/x", "no Hugging Face token"),
    "offline mode": (lambda mp, h: mp.setenv("HF_HUB_OFFLINE", "1"), "alice/x", "offline mode is set"),
    "hub unreachable": (lambda mp, h: mp.setenv("HF_ENDPOINT", "http://127.0.0.1:9"), "alice/x", "not reachable"),
    "invalid token": (lambda mp, h: mp.setenv("HF_TOKEN", "hf_wrongwrongwrong"), "alice/x", "refused by the Hub"),
    "read-only token": (lambda mp, h: setattr(h, "role", "read"), "alice/x", "read-only"),
    "foreign namespace": (lambda mp, h: None, "someone-else/x", "cannot write under 'someone-else'"),
}


@pytest.mark.parametrize("case", CASES)
def test_refused_before_anything_is_sent(fake_hub, run_folder, monkeypatch, case, capfd):
    setup, repo_id, message = CASES[case]
    setup(monkeypatch, fake_hub)
    with pytest.raises(UserError, match=message) as e:
        hub.push_folder(run_folder, hub.validate_push(repo_id))
    assert _sent(fake_hub) == [] and fake_hub.commits == [] and fake_hub.created == []
    assert e.value.fix and TOKEN not in e.value.render()
    assert TOKEN not in "".join(capfd.readouterr())


def test_failed_commit_leaves_nothing_behind(fake_hub, run_folder):
    fake_hub.fail_commits = True
    with pytest.raises(UserError, match="nothing was committed; the repo this push had created was deleted"):
        hub.push_folder(run_folder, hub.validate_push("alice/tiny"))
    assert fake_hub.commits == [] and fake_hub.deleted == [("model", "alice/tiny")]
    assert not fake_hub.repo_dir("model", "alice/tiny").exists()


def test_a_file_holding_the_token_is_not_uploaded(fake_hub, run_folder):
    (run_folder / "notes.txt").write_text(f"my token is {TOKEN}\n")
    with pytest.raises(UserError, match="notes.txt contain"):
        hub.push_folder(run_folder, hub.validate_push("alice/tiny"))
    assert _sent(fake_hub) == []


def test_pickled_weights_are_refused(run_folder):
    (run_folder / "pytorch_model.bin").write_bytes(b"PK\x03\x04" + b"\0" * 16)
    with pytest.raises(UserError, match="pickled weights"):
        hub.plan_upload(run_folder)


def test_a_folder_without_card_gets_one_generated(run_folder):
    (run_folder / "README.md").unlink()
    plan = hub.plan_upload(run_folder, repo_id="alice/tiny")
    card = dict(plan.files)["README.md"].decode()
    assert cards.check_model_card(card) == [] and "final_loss" in card and plan.notes


def test_hub_request_from_training_arguments(tmp_path, fake_hub, monkeypatch):
    from transformers import TrainingArguments

    monkeypatch.delenv("HF_TOKEN")  # the token comes from --hub_token only

    targs = TrainingArguments(output_dir=str(tmp_path / "o"), push_to_hub=True, hub_model_id="alice/sft",
                              hub_token=TOKEN, hub_private_repo=True, report_to="none", use_cpu=True)
    req = hub.hub_request(targs)
    assert req.repo_id == "alice/sft" and req.private
    assert targs.push_to_hub is False, "the Trainer must not push checkpoints half-way"
    assert targs.hub_token is None, "the token would be pickled into every checkpoint's training_args.bin"
    assert req.token == TOKEN and TOKEN not in repr(req) and TOKEN.encode() not in pickle.dumps(req)
    from hfrepro.config import OutputArguments
    assert hub.hub_request(OutputArguments(output_dir="x")) is None


def test_dataset_push_is_a_dataset_repo_with_its_card(fake_hub, tmp_path):
    import io

    import pandas as pd
    from datasets import Dataset, DatasetDict

    dd = DatasetDict(train=Dataset.from_dict({"prompt": ["a", "b", "c"], "chosen": ["x", "y", "z"]}),
                     test=Dataset.from_dict({"prompt": ["d"], "chosen": ["w"]}))
    card = cards.dataset_card(title="Pairs", license="mit", language=["en"], source="built by a test",
                            num_examples=4, description="Tiny preference pairs.",
                            how_built="Written by hand in a test to check the dataset push path end to end.",
                            splits={"train": 3, "test": 1})
    req = hub.validate_push("alice/pairs", repo_type="dataset")
    hub.push_dataset(dd, req, card=card)
    (c,) = fake_hub.commits
    assert c["repo_type"] == "dataset" and fake_hub.created[0][0] == "dataset"
    assert sorted(c["files"]) == ["README.md", "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"]
    meta = yaml.safe_load(c["files"]["README.md"].decode().split("---")[1])
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/train-*"},
                                                {"split": "test", "path": "data/test-*"}]
    assert pd.read_parquet(io.BytesIO(c["files"]["data/train-00000-of-00001.parquet"]))["prompt"].tolist() == \
        ["a", "b", "c"]


def test_cli_dry_run_lists_the_upload_without_token(run_folder, capsys, monkeypatch):
    from hfrepro.cli import _main

    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert _main(["push", str(run_folder), "--repo-id", "alice/tiny", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "model.safetensors" in out and "metrics.json" in out and "checkpoint-1" not in out and "optimizer" not in out
    assert "status.json" not in out and ".lock" not in out
    assert "nothing was uploaded" in out


def test_cli_without_token_exits_2_with_one_message(run_folder):
    r = run_cli("push", run_folder, "--repo-id", "alice/tiny", env={"HF_TOKEN": ""})
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: no Hugging Face token") and "Traceback" not in r.stderr
    assert r.stderr.count("error:") == 1 and "fix:" in r.stderr


@pytest.mark.integration
def test_embedded_dataset_push_plan(capsys):
    """An embedded dataset goes up as Parquet per split with its data_cards/ card (dry run: no network)."""
    from hfrepro.cli import _main

    assert _main(["push", "--dataset", "wordsim353", "--repo-id", "alice/wordsim353", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for f in ("README.md", "data/train-00000-of-00001.parquet", "data/validation-00000-of-00001.parquet",
              "data/test-00000-of-00001.parquet"):
        assert f in out
