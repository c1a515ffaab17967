"""End to end with the real clients: a recipe trains and pushes (`recipes/smoke.py --push_to_hub`) to a local
FakeHub through HfApi; `hfrepro push` pushes a run folder and a dataset; olah serves what was pushed as a Hub
mirror on 127.0.0.1; a fresh process loads it with `from_pretrained("org/name")` / `load_dataset("org/name")`
and gets the same outputs as the local folder. A recognisable fake HF_TOKEN is set throughout, and every file
written and every line printed is searched for it.

Subprocesses: the recipe, three `hfrepro push` runs (light), olah, one loader.
"""

import importlib.util
import json
import os
import subprocess

import pytest
from conftest import FIXTURES, PY, REPO
from hubfakes import FakeHub, start_mirror

from hfrepro import cards

pytestmark = pytest.mark.integration

TOKEN = "hf_hfreproFAKEtokenRoundTrip9876543210"
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
TEXT = "The king walked"

LOADER = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from datasets import load_dataset
from huggingface_hub import hf_hub_download
out = {}
for rid in sys.argv[2].split(","):
    tok = AutoTokenizer.from_pretrained(rid)
    model = AutoModelForCausalLM.from_pretrained(rid).eval()
    ids = tok(sys.argv[3], return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    gen = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    out[rid] = {"ids": ids.tolist(), "logits": logits.flatten().tolist(), "gen": gen.tolist()}
out["metrics"] = json.load(open(hf_hub_download(sys.argv[2].split(",")[0], "metrics.json")))
ds = load_dataset(sys.argv[4])
out["dataset"] = {s: list(ds[s]["text"]) for s in ds}
json.dump(out, open(sys.argv[1], "w"))
"""


def _env(**kw) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARS}
    env.update(kw)
    return env


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if importlib.util.find_spec("olah") is None:
        pytest.skip("olah is not installed (pip install olah==0.5.4): the local Hub mirror cannot start")
    tmp = tmp_path_factory.mktemp("hubworld")
    root = tmp / "hub"
    root.mkdir()
    run = tmp / "runs" / "smoke"
    outputs: dict[str, str] = {}
    with FakeHub(root, token=TOKEN, user="alice", orgs=("hfrepro-org",)) as fake:
        push_env = _env(HF_ENDPOINT=fake.url, HF_TOKEN=TOKEN, HF_HOME=str(tmp / "hf-home-push"))
        recipe = subprocess.Popen(
            [PY, "recipes/smoke.py", "--dataset", str(FIXTURES / "tiny.txt"), "--max_steps", "2", "--block_size",
             "32", "--per_device_train_batch_size", "4", "--output_dir", str(run), "--push_to_hub",
             "--hub_model_id", "hfrepro-org/smoke", "--hub_private_repo", "true"],
            cwd=REPO, env=push_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            mirror_url, mirror = start_mirror(root)  # starts while the recipe trains
        except RuntimeError:
            recipe.kill()
            raise
        try:
            out, err = recipe.communicate(timeout=300)
            outputs["recipe"] = out + err
            assert recipe.returncode == 0, f"smoke recipe failed:\n{err[-3000:]}"

            def cli(*args, env):
                r = subprocess.run([PY, "-m", "hfrepro", *map(str, args)], cwd=REPO, env=env, capture_output=True,
                                   text=True, timeout=300)
                outputs[" ".join(map(str, args))] = r.stdout + r.stderr
                return r

            r = cli("push", run, "--repo-id", "alice/smoke-cli", env=push_env)
            assert r.returncode == 0, r.stderr
            card = cards.write_dataset_card(
                tmp / "tiny-lines.md", title="Tiny lines", license="mit", language=["en"],
                source=["tests/fixtures/tiny.txt in the hfrepro repository"], num_examples=10,
                description="Ten short English sentences used by hfrepro's tests.",
                how_built="One row per non-empty line of the file, split 80/10/10 with hfrepro's fixed seed.")
            r = cli("push", "--dataset", FIXTURES / "tiny.txt", "--card", card, "--repo-id", "alice/tiny-lines",
                    env=push_env)
            assert r.returncode == 0, r.stderr
            attempt = cli("push", run, "--repo-id", "alice/offline", env={**push_env, "HF_HUB_OFFLINE": "1"})

            result = tmp / "loaded.json"
            r = subprocess.run([PY, "-c", LOADER, str(result), "hfrepro-org/smoke,alice/smoke-cli", TEXT,
                                "alice/tiny-lines"], cwd=tmp,
                               env=_env(HF_ENDPOINT=mirror_url, HF_HOME=str(tmp / "hf-home-pull"), HF_TOKEN=""),
                               capture_output=True, text=True, timeout=300)
            outputs["loader"] = r.stdout + r.stderr
            assert r.returncode == 0, f"loading from the mirror failed:\n{r.stderr[-3000:]}"
        finally:
            mirror.kill()
            mirror.wait()
        outputs["olah"] = (tmp / "olah.log").read_text(errors="replace")
        yield {"tmp": tmp, "root": root, "run": run, "fake": fake, "outputs": outputs, "attempt": attempt,
               "loaded": json.loads(result.read_text())}


def test_recipe_push_is_one_private_commit_without_checkpoints(world):
    fake = world["fake"]
    commits = [c for c in fake.commits if c["repo_id"] == "hfrepro-org/smoke"]
    assert len(commits) == 1
    assert ("model", "hfrepro-org/smoke", "private") in fake.created
    files = set(commits[0]["files"])
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md",
            "config.yaml", "metrics.json", "log.jsonl"} <= files
    assert not [f for f in files if "checkpoint" in f or f.endswith((".bin", ".pt", ".pth"))]
    assert not [f for f in files if f in ("status.json", ".lock")]
    assert list(world["run"].glob("checkpoint-*"))  # they exist locally, they just never go up


def test_pushed_folder_is_a_complete_hub_repository(world):
    from huggingface_hub import ModelCard

    for folder in (world["run"], world["fake"].repo_dir("model", "hfrepro-org/smoke")):
        for f in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "README.md"):
            assert (folder / f).is_file(), f"{folder} lacks {f}"
        assert not [f for f in folder.glob("*.bin") if f.name != "training_args.bin" or folder != world["run"]]
        assert not list(folder.glob("*.pt"))
        assert cards.check_model_card(folder / "README.md") == []
        card = ModelCard.load(folder / "README.md")
        metrics = json.loads((world["run"] / "metrics.json").read_text())
        results = {r.metric_type: r.metric_value for r in card.data.eval_results}
        assert results == {"final_loss": metrics["final_loss"], "train_loss": metrics["train_loss"]}
        assert card.data.license == "apache-2.0" and card.data.pipeline_tag == "text-generation"
        assert "## How it was trained" in card.text and "max_steps: 2" in card.text
    pushed = (world["fake"].repo_dir("model", "hfrepro-org/smoke") / "README.md").read_text()
    assert 'AutoModelForCausalLM.from_pretrained("hfrepro-org/smoke")' in pushed


def test_round_trip_from_pretrained_gives_the_same_outputs(world):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = world["run"]
    tok = AutoTokenizer.from_pretrained(local)
    model = AutoModelForCausalLM.from_pretrained(local).eval()
    ids = tok(TEXT, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits.flatten()
    gen = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    for rid in ("hfrepro-org/smoke", "alice/smoke-cli"):
        got = world["loaded"][rid]
        assert got["ids"] == ids.tolist(), "tokenizer differs after the round trip"
        diff = (torch.tensor(got["logits"]) - logits).abs().max().item()
        print(f"{rid}: {logits.numel()} logits, max |difference| {diff:.3g}")
        assert diff <= 1e-6, "logits differ"
        assert got["gen"] == gen.tolist(), "greedy generation differs"
    assert world["loaded"]["metrics"] == json.loads((world["run"] / "metrics.json").read_text())


def test_dataset_round_trip_with_load_dataset(world):
    from hfrepro import data

    local = data.load(str(FIXTURES / "tiny.txt"))
    assert world["loaded"]["dataset"] == {s: list(local[s]["text"]) for s in local}
    (c,) = [c for c in world["fake"].commits if c["repo_id"] == "alice/tiny-lines"]
    assert c["repo_type"] == "dataset" and "README.md" in c["files"]


def test_push_attempt_without_the_hub_fails_before_upload(world):
    r = world["attempt"]
    assert r.returncode == 2 and r.stderr.startswith("error: cannot push to 'alice/offline': offline mode")
    assert "Traceback" not in r.stderr
    assert not world["fake"].repo_dir("model", "alice/offline").exists()


def test_token_never_written_or_printed(world):
    needle = TOKEN.encode()
    leaks, scanned = [], set()
    for p in world["tmp"].rglob("*"):
        if p.is_file() and ".git" not in p.parts:
            scanned.add(p.relative_to(world["tmp"]).as_posix())
            if needle in p.read_bytes():
                leaks.append(str(p))
    assert {"runs/smoke/config.yaml", "runs/smoke/metrics.json", "runs/smoke/log.jsonl",
            "runs/smoke/README.md", "hub/models/hfrepro-org/smoke/config.yaml"} <= scanned
    for name, text in world["outputs"].items():
        if TOKEN in text:
            leaks.append(f"output of {name}")
    for c in world["fake"].commits:
        leaks += [f"uploaded {c['repo_id']}/{f}" for f, b in c["files"].items() if needle in b]
    assert not leaks, f"the token leaked into: {leaks}"
    assert any(p.startswith("runs/smoke/checkpoint-") for p in scanned)  # checkpoints are searched too
