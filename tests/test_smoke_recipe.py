"""The first recipe through the shared plumbing: 2 real processes on CPU, resume after a kill, exit codes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, launch_two


@pytest.fixture
def corpus(tmp_path):
    f = tmp_path / "corpus.txt"
    words = "the cat sat on the mat while a dog ran to the king and the queen in the old house".split()
    f.write_text("\n".join(" ".join(words[i % 7:] + words[: i % 7]) for i in range(400)), encoding="utf-8")
    return f


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "HFREPRO_THREADS": "1"}


def test_two_processes_really_form_a_group(tmp_path, corpus):
    """STACK.md: MULTI_CPU silently runs one process. Assert the world size the trainer actually saw."""
    out = tmp_path / "run"
    r = launch_two([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                    str(REPO / "recipes/accelerate/cpu_2proc.yaml"), str(REPO / "recipes/smoke.py"),
                    "--dataset", str(corpus), "--output_dir", str(out), "--max_steps", "4"],
                   fresh=out, env=_env(), cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2 and "MULTI_CPU" in m["distributed_type"]
    assert m["steps"] == 4 and m["tokens_seen"] == 2 * 4 * 8 * 64  # 2 processes x steps x batch x block
    assert (out / "model.safetensors").is_file() and (out / "config.yaml").is_file()
    from transformers import AutoModelForCausalLM
    assert AutoModelForCausalLM.from_pretrained(out).config.n_layer == 2  # the run folder is the model repo


def test_killed_training_resumes_from_last_checkpoint(tmp_path, corpus):
    out = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "recipes/smoke.py"), "--dataset", str(corpus), "--output_dir", str(out),
           "--max_steps", "300", "--per_device_train_batch_size", "2", "--block_size", "32", "--save_steps", "150"]
    p = subprocess.Popen(cmd, env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("checkpoint-*/trainer_state.json")):
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    done = sorted(int(c.name.split("-")[1]) for c in out.glob("checkpoint-*")
                  if (c / "trainer_state.json").is_file())
    assert done and done[-1] < 300, "killed before the end, after a checkpoint"
    assert not (out / "metrics.json").exists()
    # The identical command again: it must continue from the checkpoint, not start over; the log keeps one row
    # per logged step (the killed run's rows after the checkpoint are logged again, not twice); train_loss is
    # the loss over the whole run, not over the resumed steps.
    r = subprocess.run(cmd, env=_env(), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"checkpoint-{done[-1]}" in json.loads((out / "status.json").read_text())["resumed_from"]
    logs = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    steps = [x["step"] for x in logs if "loss" in x]
    assert steps == sorted(set(steps)) and steps[0] == 1 and steps[-1] == 300, "one row per step, whole run"
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 300
    from hfrepro.runtime import whole_run_loss
    assert m["train_loss"] == pytest.approx(whole_run_loss(logs))
    assert m["train_loss"] == pytest.approx(sum(x["loss"] for x in logs if "loss" in x) / len(steps), rel=1e-6)


def test_changed_config_in_same_folder_is_refused(tmp_path, corpus):
    out = tmp_path / "run"
    base = [sys.executable, "-m", "hfrepro", "smoke", "--dataset", str(corpus), "--output_dir", str(out)]
    assert subprocess.run(base + ["--max_steps", "2"], env=_env(), cwd=REPO, capture_output=True).returncode == 0
    r = subprocess.run(base + ["--max_steps", "3"], env=_env(), cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "different config (differs in: max_steps)" in r.stderr
    assert "Traceback" not in r.stderr


def test_one_entrance_from_any_directory(tmp_path, corpus):
    """`hfrepro smoke` and `python recipes/smoke.py` are the same code; the command works outside the checkout;
    the same command again is a no-op; the run's config.yaml replays the run."""
    out = tmp_path / "run"
    args = ["--dataset", str(corpus), "--output_dir", str(out), "--max_steps", "2", "--budget", "tiny"]
    r = subprocess.run([sys.executable, "-m", "hfrepro", "smoke", *args], env=_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "status.json"}
    r = subprocess.run([sys.executable, str(REPO / "recipes/smoke.py"), *args], env=_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "already trained with this config" in r.stdout, r.stderr[-3000:]
    assert before == {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "status.json"}
    replay = tmp_path / "replay"
    r = subprocess.run([sys.executable, "-m", "hfrepro", "smoke", "--config", str(out / "config.yaml"),
                        "--output_dir", str(replay)], env=_env(), cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (out, replay))
    assert a["train_loss"] == b["train_loss"] and a["steps"] == b["steps"] == 2


def test_precision_bf16_is_recorded_and_replayed(tmp_path, corpus):
    """`--precision bf16` trains in mixed precision (another loss than fp32's), is written to config.yaml (so
    `--config config.yaml` replays it), and an unknown precision is refused before any model loads."""
    losses = {}
    for p in ("fp32", "bf16"):
        out = tmp_path / p
        r = subprocess.run([sys.executable, "-m", "hfrepro", "smoke", "--dataset", str(corpus), "--output_dir",
                            str(out), "--max_steps", "3", "--precision", p], env=_env(), cwd=REPO,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"precision: {p}" in (out / "config.yaml").read_text()
        losses[p] = json.loads((out / "metrics.json").read_text())["train_loss"]
    assert losses["bf16"] != losses["fp32"] and abs(losses["bf16"] - losses["fp32"]) < 0.1 * losses["fp32"]
    r = subprocess.run([sys.executable, "-m", "hfrepro", "smoke", "--config", str(tmp_path / "bf16" / "config.yaml")],
                       env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "already" in (r.stdout + r.stderr), r.stderr[-2000:]  # the same config: done
    r = subprocess.run([sys.executable, "-m", "hfrepro", "smoke", "--dataset", str(corpus), "--output_dir",
                        str(tmp_path / "x"), "--precision", "fp8"], env=_env(), cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "fp8" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()
