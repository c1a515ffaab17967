"""Fine-tuning jobs, like the hosted tool's: `create` (in the foreground or in the background), `get`, `follow`,
`list`, `cancel`, `resume`. A job is a run of `recipes/sft.py` in a folder of its own:

    runs/finetune/ft-lora-3fa9c1/
        request.json     what `create` was asked (training file, model, method, hyper-parameters)
        job.json         status (queued | running | succeeded | failed | cancelled), pid, times, last error
        output.log       the human-readable event log `follow` shows (queue, cost, "Completed epoch 1/3",
                         "Uploaded model: ...", "Uploaded result file: ...")
        results.csv      the result file: one row per logged training step (step, epoch, tokens, loss, ...)
        stderr.log       a background job's raw stdout/stderr (tracebacks land here)
        adapter_config.json, ..., README.md, config.yaml, metrics.json, log.jsonl, checkpoint-N/   (the recipe's)

A job runs `hfrepro sft` with the arguments `JobRequest.recipe_argv` names (over recipes/configs/sft/
default.yaml), in this process or in a detached one (`python -m hfrepro.finetune.cli RUN_DIR`, its own session);
nothing else keeps state, so `list` and `follow` work from any shell. A job whose process died without saying
so (killed, out of memory, machine rebooted) shows as failed, with the end of its stderr.log.

Jobs of one runs folder train **one at a time**, as on the hosted service: a new job is told its queue number
(the jobs created before it and still queued or running) and waits for them before it starts.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from hfrepro.errors import UserError
from hfrepro.finetune.jsonl import load_examples
from hfrepro.finetune.sft import METHODS, EventLog
from hfrepro.fsutil import atomic_write_json, atomic_write_text, read_json
from hfrepro.models import resolve
from hfrepro.runtime import read_log

DEFAULT_RUNS_DIR = "runs/finetune"
ACTIVE = ("queued", "running")
# The learning rate of a method when `create` is given none: LoRA and the untied head want a larger step than
# full fine-tuning (runs of a few epochs over a few hundred examples, the README workflow).
DEFAULT_LR = {"full": 3e-5, "head": 1e-3, "lora": 1e-3}


@dataclass
class JobRequest:
    """What `hfrepro finetune create` was asked, in the recipe's argument names (`training_file`: -t)."""
    training_file: str
    model: str = "smollm2-135m-instruct"
    method: str = "lora"
    validation_file: str | None = None
    num_train_epochs: float = 3.0
    max_steps: int = -1
    learning_rate: float | None = None        # None: the method's default (DEFAULT_LR)
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int = 512
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: str = "attention"
    merge: bool = False
    seed: int = 0
    save_steps: int = 0                        # 0: a checkpoint at the end of each epoch
    threads: int = 0

    def recipe_argv(self, run: Path) -> list[str]:
        """The `hfrepro sft` arguments of this job; the run folder is the recipe's output_dir."""
        lr = self.learning_rate or DEFAULT_LR[self.method]
        args = dict(model_name_or_path=self.model, train_file=self.training_file, method=self.method,
                    num_train_epochs=self.num_train_epochs, max_steps=self.max_steps, learning_rate=lr,
                    per_device_train_batch_size=self.per_device_train_batch_size,
                    gradient_accumulation_steps=self.gradient_accumulation_steps, max_length=self.max_length,
                    lora_r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                    lora_target_modules=self.lora_target_modules, merge=self.merge, seed=self.seed,
                    data_seed=self.seed, logging_steps=1, save_total_limit=1, output_dir=run, threads=self.threads)
        if self.save_steps:
            args.update(save_strategy="steps", save_steps=self.save_steps)
        else:
            args.update(save_strategy="epoch")
        if self.validation_file:
            args.update(validation_file=self.validation_file)
        return [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in args.items()]


def runs_dir(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get("HFREPRO_FINETUNE_RUNS") or DEFAULT_RUNS_DIR)


def new_run_id(method: str) -> str:
    return f"ft-{method}-{secrets.token_hex(3)}"


def find_run(name: str, base: str | Path | None = None, must_exist: bool = True) -> Path | None:
    """A run folder from a run id (in the runs folder) or a path to a run folder."""
    p = Path(name).expanduser()
    for cand in (p, runs_dir(base) / name):
        if cand.is_dir() and ((cand / "job.json").is_file() or (cand / "request.json").is_file()):
            return cand
    if must_exist:
        known = [r.name for r in list_run_dirs(base)]
        raise UserError(f"no fine-tuning run {name!r} in {runs_dir(base)}",
                        fix=("known runs: " + ", ".join(known[-8:])) if known else
                        "create one: hfrepro finetune create -t data_prepared.jsonl --method lora")
    return None


def has_model(run: Path) -> bool:
    """Whether the run folder holds its model yet (weights or a LoRA adapter)."""
    return (run / "config.json").is_file() or (run / "adapter_config.json").is_file()


def list_run_dirs(base: str | Path | None = None) -> list[Path]:
    b = runs_dir(base)
    if not b.is_dir():
        return []
    runs = [p for p in b.iterdir() if p.is_dir() and (p / "job.json").is_file()]
    return sorted(runs, key=lambda p: (read_json(p / "job.json").get("created", 0), p.name))


# --- status ---------------------------------------------------------------------------------------------

def _proc_start(pid: int) -> str | None:
    """The kernel's start time of a process (to tell a live job from a recycled pid), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":  # zombie: finished, not yet reaped
            return None
        return fields[19]
    except (OSError, ValueError, IndexError):
        try:
            os.kill(pid, 0)
            return "?"
        except OSError:
            return None


def _alive(job: dict) -> bool:
    pid = job.get("pid")
    if not pid:
        return False
    start = _proc_start(int(pid))
    if start is None:
        return False
    return job.get("pid_start") in (None, "?", start) or start == "?"


def write_job(run: Path, **update) -> dict:
    f = run / "job.json"
    job = read_json(f) if f.is_file() else {}
    job.update(update)
    atomic_write_json(f, job)
    return job


def _tail(path: Path, n: int = 6) -> str:
    if not path.is_file():
        return ""
    lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    return "\n".join(lines[-n:])


def job_status(run: Path) -> dict:
    """job.json, with a dead process reported as failed (and its last error)."""
    f = run / "job.json"
    job = read_json(f) if f.is_file() else {"status": "unknown"}
    if job.get("status") in ACTIVE and not _alive(job):
        # one more read: the process may have finished between our two looks
        time.sleep(0.05)
        job = read_json(f) if f.is_file() else job
        if job.get("status") in ACTIVE and not _alive(job):
            err = _tail(run / "stderr.log") or "(no output)"
            job = write_job(run, status="failed", finished=time.time(),
                            error=f"the job process (pid {job.get('pid')}) ended without finishing; its last "
                                  f"output:\n{err}")
    return job


# --- running a job --------------------------------------------------------------------------------------

def execute(run: Path, train: Callable[[list[str]], dict], echo: bool = True) -> dict:
    """Run the job of run/request.json in this process with `train` (the sft recipe's `cli`); keeps job.json
    up to date. A SIGTERM (`cancel`) arrives as KeyboardInterrupt."""
    req = JobRequest(**read_json(run / "request.json"))
    log = EventLog(run / "output.log", echo=echo)
    write_job(run, pid=os.getpid(), pid_start=_proc_start(os.getpid()))
    try:
        wait_turn(run, log)
        write_job(run, status="running", started=time.time())
        log("Fine-tune started" + (f" (pid {os.getpid()})" if not echo else ""))
        metrics = train(req.recipe_argv(run))
    except KeyboardInterrupt:
        write_job(run, status="cancelled", finished=time.time(), error="interrupted")
        log(f"Fine-tune cancelled; resume it with: hfrepro finetune resume {run.name}")
        raise
    except UserError as e:
        write_job(run, status="failed", finished=time.time(), error=e.render())
        log(f"Fine-tune failed: {e.what}")
        raise
    except Exception as e:
        write_job(run, status="failed", finished=time.time(), error=f"{type(e).__name__}: {e}")
        log(f"Fine-tune failed: {type(e).__name__}: {e}")
        raise
    results = write_results(run)
    write_job(run, status="succeeded", finished=time.time(), model_dir=metrics.get("model_dir"),
              result_file=str(results))
    log(f"Uploaded model: {run.name} (saved in {run})")
    log(f"Uploaded result file: {results}")
    log("Job complete: status succeeded")
    return metrics


def ahead(run: Path) -> list[Path]:
    """The jobs of the same runs folder created before `run` and still queued or running (its queue)."""
    me = read_json(run / "job.json").get("created", 0) if (run / "job.json").is_file() else time.time()
    out = []
    for other in list_run_dirs(run.parent):
        if other.resolve() == run.resolve():
            continue
        job = job_status(other)
        if job.get("status") in ACTIVE and (job.get("created", 0), other.name) < (me, run.name):
            out.append(other)
    return out


def wait_turn(run: Path, log: Callable[[str], None], poll: float = 2.0, timeout: float | None = None) -> None:
    """Wait until no earlier job of the runs folder is queued or running (jobs train one at a time)."""
    t0, shown = time.time(), None
    while True:
        queue = ahead(run)
        if not queue:
            return
        if [q.name for q in queue] != shown:
            shown = [q.name for q in queue]
            log(f"Waiting in the queue behind {', '.join(shown)}")
        if timeout is not None and time.time() - t0 > timeout:
            raise UserError(f"run {run.name} waited {timeout:.0f}s in the queue", fix="try again later")
        time.sleep(poll)


RESULT_COLUMNS = ("step", "epoch", "tokens_seen", "loss", "learning_rate", "grad_norm", "mean_token_accuracy")


def write_results(run: Path) -> Path:
    """results.csv, the job's result file: one row per logged training step (from the run's log.jsonl)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(RESULT_COLUMNS)
    for row in read_log(run / "log.jsonl"):
        if "loss" in row:
            w.writerow([row.get(k, "") for k in RESULT_COLUMNS])
    return atomic_write_text(run / "results.csv", buf.getvalue())


def create(req: JobRequest, base: str | Path | None = None, name: str | None = None, background: bool = False,
           overwrite: bool = False) -> Path:
    """Check the request (bad files, unknown model: refused before any job exists) and write the job's folder,
    queued. Run it with `execute`, or `launch` it detached."""
    if req.method not in METHODS:
        raise UserError(f"unknown method {req.method!r}", fix=f"use one of: {', '.join(METHODS)}")
    if req.merge and req.method != "lora":
        raise UserError("--merge only applies to --method lora", fix="drop --merge (full and head runs already "
                                                                       "write complete weights)")
    req.training_file = str(Path(req.training_file).resolve())
    n = len(load_examples(req.training_file))
    if req.validation_file:
        req.validation_file = str(Path(req.validation_file).resolve())
        load_examples(req.validation_file)
    resolve(req.model)

    run_id = name or new_run_id(req.method)
    run = runs_dir(base) / run_id
    if run.exists() and (run / "request.json").is_file():
        old = read_json(run / "request.json")
        if old != asdict(req) and not overwrite:
            raise UserError(f"run {run_id} exists with a different request", where=str(run),
                            fix="choose another --name, or pass --overwrite to start it afresh")
        job = job_status(run)
        if job.get("status") in ACTIVE:
            raise UserError(f"run {run_id} is already {job['status']} (pid {job.get('pid')})",
                            fix=f"follow it: hfrepro finetune follow {run_id}")
    if overwrite and run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run / "request.json", asdict(req))
    write_job(run, id=run_id, status="queued", created=time.time(), method=req.method, model=req.model,
              training_file=req.training_file, examples=n, pid=None, error=None, overwrite=overwrite)
    log = EventLog(run / "output.log", echo=not background)
    log(f"Created fine-tune: {run_id} ({req.method} on {req.model}, {n:,} examples from "
        f"{Path(req.training_file).name})")
    log(f"Fine-tune enqueued. Queue number: {len(ahead(run))}")
    return run


def launch(run: Path, command: list[str]) -> int:
    """Start `command` (which runs the job of `run`) detached from this terminal; returns its pid."""
    log = open(run / "stderr.log", "ab")
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env=dict(os.environ), cwd=os.getcwd())
    log.close()
    write_job(run, pid=proc.pid, pid_start=_proc_start(proc.pid))
    return proc.pid


def cancel(run: Path) -> dict:
    job = job_status(run)
    if job.get("status") not in ACTIVE:
        raise UserError(f"run {run.name} is not running (status: {job.get('status')})")
    pid = int(job["pid"])
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for _ in range(100):
        if not _alive(job):
            break
        time.sleep(0.1)
    job = read_json(run / "job.json")
    if job.get("status") in ACTIVE:
        job = write_job(run, status="cancelled", finished=time.time(), error="cancelled by the user")
    return job


def requeue(run: Path, background: bool = False) -> Path:
    """Queue a failed or cancelled job again: run again, it continues from its last checkpoint."""
    job = job_status(run)
    if job.get("status") in ACTIVE:
        raise UserError(f"run {run.name} is still {job['status']}", fix=f"hfrepro finetune follow {run.name}")
    if job.get("status") == "succeeded":
        raise UserError(f"run {run.name} already succeeded", fix=f"chat with it: hfrepro chat --model {run.name}")
    write_job(run, status="queued", error=None, pid=None)
    EventLog(run / "output.log", echo=not background)(f"Resuming fine-tune {run.name}")
    return run


# --- follow / list --------------------------------------------------------------------------------------

def follow(run: Path, out=None, poll: float = 0.5, timeout: float | None = None) -> dict:
    """Print output.log and keep printing new lines until the job ends; returns the final job status."""
    out = out or sys.stdout
    log = run / "output.log"
    pos = 0
    t0 = time.time()
    while True:
        job = job_status(run)
        if log.is_file():
            with open(log, encoding="utf-8", errors="replace") as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
            if chunk:
                out.write(chunk)
                out.flush()
        if job.get("status") not in ACTIVE:
            # flush what the job wrote after our last read
            if log.is_file():
                with open(log, encoding="utf-8", errors="replace") as f:
                    f.seek(pos)
                    rest = f.read()
                if rest:
                    out.write(rest)
            return job
        if timeout is not None and time.time() - t0 > timeout:
            return job
        time.sleep(poll)


def events(run: Path) -> list[dict]:
    """output.log as events: {"created_at", "message"}."""
    f = run / "output.log"
    out = []
    for line in f.read_text(encoding="utf-8", errors="replace").splitlines() if f.is_file() else []:
        if line.startswith("[") and "] " in line:
            when, msg = line[1:].split("] ", 1)
            out.append({"created_at": when, "message": msg})
        elif out:
            out[-1]["message"] += "\n" + line
    return out


def details(run: Path) -> dict:
    """Everything about one job, as `hfrepro finetune get ID` prints it (the hosted `fine_tunes.get`)."""
    job, req = job_status(run), read_json(run / "request.json") if (run / "request.json").is_file() else {}
    m = read_json(run / "metrics.json") if (run / "metrics.json").is_file() else {}
    stamp = (lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else None)
    hyper = ("method", "num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size",
             "gradient_accumulation_steps", "max_length", "lora_r", "lora_alpha", "lora_dropout",
             "lora_target_modules", "merge", "seed")
    done = job.get("status") == "succeeded"
    return {
        "id": run.name, "object": "fine-tune", "status": job.get("status"), "model": req.get("model"),
        "fine_tuned_model": run.name if done else None, "model_dir": str(run) if done else None,
        "created_at": stamp(job.get("created")), "started_at": stamp(job.get("started")),
        "finished_at": stamp(job.get("finished")),
        "hyperparams": {k: req[k] for k in hyper if k in req},
        "training_files": [{"filename": req.get("training_file"), "examples": job.get("examples")}],
        "validation_files": [{"filename": req["validation_file"]}] if req.get("validation_file") else [],
        "result_files": [str(run / "results.csv")] if (run / "results.csv").is_file() else [],
        "metrics": {k: m[k] for k in ("steps", "epochs", "train_loss", "eval_loss", "tokens_seen",
                                      "trainable_params", "trainable_pct", "train_seconds") if k in m},
        "error": job.get("error"), "events": events(run)}


def summary(run: Path) -> dict:
    job = job_status(run)
    m = read_json(run / "metrics.json") if (run / "metrics.json").is_file() else {}
    created = job.get("created")
    return {"id": run.name, "status": job.get("status"), "method": job.get("method"),
            "model": Path(str(job.get("model"))).name, "examples": job.get("examples"),
            "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(created)) if created else None,
            "steps": m.get("steps"), "train loss": m.get("train_loss"),
            "trainable %": m.get("trainable_pct"), "time (s)": m.get("train_seconds"),
            "result": m.get("model_dir") if job.get("status") == "succeeded" else
            (job.get("error") or "").splitlines()[0][:60] if job.get("status") == "failed" else ""}
