"""Jobs: create (background), follow, list, a dead job shown as failed, cancel; the CLI's options and exit codes."""

# pytest fixtures come from finetune_helpers (imported below), and tests name them as arguments:
# ruff: noqa: F811
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli
from finetune_helpers import tiny_model_dir  # noqa: F401  (fixture)

from hfrepro.cli import build_parser
from hfrepro.errors import UserError
from hfrepro.finetune import jobs
from hfrepro.finetune.chat import ChatSession
from hfrepro.finetune.cli import start

BAD = Path(__file__).resolve().parent / "fixtures" / "finetune" / "bad"


def _data(tmp_path) -> Path:
    f = tmp_path / "train.jsonl"
    words = [("cat", "noun"), ("run", "verb"), ("big", "adjective"), ("fast", "adverb"), ("dog", "noun"),
             ("sing", "verb"), ("small", "adjective"), ("slowly", "adverb"), ("king", "noun"), ("walk", "verb"),
             ("old", "adjective"), ("often", "adverb")]
    rows = [{"prompt": f"{w} ->", "completion": f" {p}"} for w, p in words]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


def test_background_job_follow_list_and_chat(tiny_model_dir, tmp_path, capsys):
    """One detached process trains; follow streams its log to the end; list shows it; chat loads it."""
    runs = tmp_path / "runs"
    req = jobs.JobRequest(training_file=str(_data(tmp_path)), model=str(tiny_model_dir), method="lora",
                          num_train_epochs=2, per_device_train_batch_size=4, threads=1)
    run = jobs.create(req, base=runs, name="ft-test", background=True)
    start(run, background=True)              # python -m hfrepro.finetune.cli RUN: the sft recipe, detached
    job = jobs.job_status(run)
    assert job["status"] in ("queued", "running", "succeeded") and job["pid"]
    final = jobs.follow(run, poll=0.2, timeout=240)
    out = capsys.readouterr().out
    assert final["status"] == "succeeded", final.get("error")
    for line in ("Created fine-tune: ft-test", "Fine-tune enqueued. Queue number: 0", "Fine-tune started",
                 "Estimated cost", "Completed epoch 1/2", "Completed epoch 2/2", "Fine-tune succeeded",
                 "Uploaded model: ft-test", f"Uploaded result file: {run / 'results.csv'}", "Job complete"):
        assert line in out, out
    assert len((run / "results.csv").read_text().splitlines()) == 1 + 6     # a row per logged step
    rows = [jobs.summary(r) for r in jobs.list_run_dirs(runs)]
    assert [(r["id"], r["status"], r["method"], r["steps"]) for r in rows] == [("ft-test", "succeeded", "lora", 6)]
    s = ChatSession.load("ft-test", runs_dir=runs, max_new_tokens=4, out=open(os.devnull, "w"))
    assert s.send("The cat?") is not None and len(s.messages) == 2
    assert (run / "adapter_config.json").is_file() and (run / "config.yaml").is_file()   # the run is the model
    cfg = (run / "config.yaml").read_text()
    assert "num_train_epochs: 2" in cfg and "method: lora" in cfg and f"output_dir: {run}" in cfg


def test_create_takes_snake_case_options_and_dashed_aliases():
    parser = build_parser()
    for spelling in (["--max_steps", "20", "--learning_rate", "1e-3", "--per_device_train_batch_size", "4"],
                     ["--max-steps", "20", "--lr", "1e-3", "--batch-size", "4"]):
        a = parser.parse_args(["finetune", "create", "-t", "d.jsonl", "-m", "m", "--method", "lora", *spelling,
                               "--background"])
        assert (a.max_steps, a.learning_rate, a.per_device_train_batch_size, a.background) == (20, 1e-3, 4, True)
    argv = jobs.JobRequest(training_file="d.jsonl", max_steps=20, method="head").recipe_argv(Path("runs/x"))
    assert "--max_steps=20" in argv and "--learning_rate=0.001" in argv and "--output_dir=runs/x" in argv
    assert "--train_file=d.jsonl" in argv and "--merge=false" in argv


def test_dead_job_shows_as_failed_with_its_last_error(tmp_path):
    run = tmp_path / "runs" / "ft-dead"
    run.mkdir(parents=True)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    (run / "stderr.log").write_text("Traceback (most recent call last):\nMemoryError: out of memory\n")
    jobs.write_job(run, id="ft-dead", status="running", pid=p.pid, pid_start="123", created=time.time())
    job = jobs.job_status(run)
    assert job["status"] == "failed"
    assert f"pid {p.pid}" in job["error"] and "MemoryError: out of memory" in job["error"]
    assert jobs.summary(run)["status"] == "failed"


def test_cancel_a_running_job(tmp_path):
    run = tmp_path / "runs" / "ft-sleep"
    run.mkdir(parents=True)
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    jobs.write_job(run, id="ft-sleep", status="running", pid=p.pid, pid_start=jobs._proc_start(p.pid),
                   created=time.time())
    assert jobs.job_status(run)["status"] == "running"
    job = jobs.cancel(run)
    p.wait(timeout=10)
    assert job["status"] == "cancelled"
    with pytest.raises(UserError, match="not running"):
        jobs.cancel(run)


def test_create_refuses_bad_input_before_any_job(tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(UserError, match="line 3: invalid JSON"):
        jobs.create(jobs.JobRequest(training_file=str(BAD / "invalid_json.jsonl")), base=runs)
    with pytest.raises(UserError, match="unknown method"):
        jobs.create(jobs.JobRequest(training_file=str(_data(tmp_path)), method="adapter"), base=runs)
    with pytest.raises(UserError, match="--merge only applies"):
        jobs.create(jobs.JobRequest(training_file=str(_data(tmp_path)), method="full", merge=True), base=runs)
    with pytest.raises(UserError, match="no fine-tuning run 'ft-nope'"):
        jobs.find_run("ft-nope", runs)
    assert not runs.exists() or not any(runs.iterdir())


def test_cli_prepare_data_exit_codes(tmp_path):
    """The CLI end to end (one subprocess): messages by line, prepared file written, exit 0; --check exit 1;
    a file with nothing usable: exit 2 with one clear message."""
    src = tmp_path / "d.jsonl"
    src.write_bytes((BAD / "duplicate.jsonl").read_bytes())
    r = run_cli("finetune", "prepare-data", "-f", src, "-m", "none", "--check")
    assert r.returncode == 1 and "line 4: duplicate of line 1 -> dropped" in r.stdout, r.stdout + r.stderr
    r = run_cli("finetune", "prepare-data", "-f", tmp_path / "missing.jsonl", "-m", "none")
    assert r.returncode == 2 and "error: file not found" in r.stderr and "Traceback" not in r.stderr


def test_cli_prepare_data_converts_text_then_checks(tmp_path):
    src = tmp_path / "guide.txt"
    src.write_text("Q: What is Neural Studio?\nA: A tool.\n\nQ: What is a layer?\nA:\n")
    r = run_cli("finetune", "prepare-data", "-f", src, "-m", "none")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Converting" in r.stdout and "2 by labelled prompt/completion" in r.stdout
    assert 'guide.txt lines 4-5: "completion" is empty -> dropped' in r.stdout
    assert (tmp_path / "guide.jsonl").is_file()
    prepared = (tmp_path / "guide_prepared.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in prepared] == [{"prompt": "What is Neural Studio?", "completion": " A tool."}]


def test_queue_one_job_at_a_time(tmp_path):
    """A job created while an earlier one is active is told its queue number and waits for it."""
    runs = tmp_path / "runs"
    first = runs / "ft-first"
    first.mkdir(parents=True)
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        jobs.write_job(first, id="ft-first", status="running", pid=p.pid, pid_start=jobs._proc_start(p.pid),
                       created=time.time() - 10)
        run = jobs.create(jobs.JobRequest(training_file=str(_data(tmp_path))), base=runs, name="ft-second")
        assert "Fine-tune enqueued. Queue number: 1" in (run / "output.log").read_text()
        assert jobs.ahead(run) == [first] and jobs.ahead(first) == []
        seen = []
        with pytest.raises(UserError, match="waited"):
            jobs.wait_turn(run, seen.append, poll=0.05, timeout=0.2)
        assert seen == ["Waiting in the queue behind ft-first"]
    finally:
        p.kill()
        p.wait()
    jobs.wait_turn(run, seen.append, poll=0.05, timeout=5)     # the first job is gone: its turn


def test_get_and_results_file(tmp_path, capsys):
    run = jobs.create(jobs.JobRequest(training_file=str(_data(tmp_path)), max_steps=3), base=tmp_path / "runs",
                      name="ft-x")
    (run / "log.jsonl").write_text('{"step": 1, "epoch": 0.5, "loss": 2.5, "learning_rate": 0.001}\n'
                                   '{"step": 1, "epoch": 0.5, "train_runtime": 3.0}\n'
                                   '{"step": 2, "epoch": 1.0, "loss": 2.0, "learning_rate": 0.001}\n')
    assert jobs.write_results(run).read_text().splitlines() == [
        "step,epoch,tokens_seen,loss,learning_rate,grad_norm,mean_token_accuracy", "1,0.5,,2.5,0.001,,",
        "2,1.0,,2.0,0.001,,"]
    jobs.write_job(run, status="succeeded")
    d = jobs.details(run)
    assert (d["id"], d["status"], d["fine_tuned_model"], d["hyperparams"]["max_steps"]) == ("ft-x", "succeeded",
                                                                                           "ft-x", 3)
    assert d["training_files"][0]["examples"] == 12 and d["result_files"] == [str(run / "results.csv")]
    assert [e["message"] for e in d["events"]][:2] == [
        "Created fine-tune: ft-x (lora on smollm2-135m-instruct, 12 examples from train.jsonl)",
        "Fine-tune enqueued. Queue number: 0"]
    r = run_cli("finetune", "get", "ft-x", "--runs_dir", tmp_path / "runs")
    assert r.returncode == 0 and json.loads(r.stdout)["fine_tuned_model"] == "ft-x", r.stderr
