"""Fine-tuning jobs, like the hosted tool's: `create` (in the foreground or in the background), `follow`, `list`,
`cancel`, `resume`. A job is a run folder:

    runs/finetune/ft-lora-3fa9c1/
        request.json     what `create` was asked (training file, model, method, hyper-parameters)
        job.json         status (queued | running | succeeded | failed | cancelled), pid, times, last error
        output.log       the human-readable event log `follow` shows ("Completed epoch 1/3", cost, ...)
        stderr.log       a background job's raw stdout/stderr (tracebacks land here)
        config.yaml, metrics.json, log.jsonl, checkpoints/, model/    (as every hfrepro run)

A background job is a detached process (`python -m hfrepro.finetune.jobs RUN_DIR`, its own session) writing to
those files; nothing else keeps state, so `list` and `follow` work from any shell. A job whose process died
without saying so (killed, out of memory, machine rebooted) shows as failed, with the end of its stderr.log.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_write_json, read_json

DEFAULT_RUNS_DIR = "runs/finetune"
ACTIVE = ("queued", "running")


@dataclass
class JobRequest:
    training_file: str
    model: str = "smollm2-135m-instruct"
    method: str = "lora"
    validation_file: str | None = None
    epochs: float = 3.0
    max_steps: int = -1
    learning_rate: float | None = None        # None: the method's default (sft.DEFAULT_LR)
    batch_size: int = 8
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
    extra: dict[str, Any] = field(default_factory=dict)


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

def execute(run: Path, echo: bool = True) -> dict:
    """Run the job described by run/request.json in this process; keeps job.json up to date."""
    from hfrepro.finetune.jsonl import load_examples
    from hfrepro.finetune.sft import DEFAULT_LR, EventLog, LoraSettings, train_sft
    from hfrepro.training import setup_runtime

    req = JobRequest(**read_json(run / "request.json"))
    log = EventLog(run / "output.log", echo=echo)
    write_job(run, status="running", pid=os.getpid(), pid_start=_proc_start(os.getpid()), started=time.time())
    log("Fine-tune started" + (f" (pid {os.getpid()})" if not echo else ""))
    try:
        setup_runtime(seed=req.seed, threads=req.threads or None)
        train = load_examples(req.training_file)
        valid = load_examples(req.validation_file) if req.validation_file else None
        kw: dict[str, Any] = dict(num_train_epochs=req.epochs, max_steps=req.max_steps,
                                  learning_rate=req.learning_rate or DEFAULT_LR[req.method],
                                  per_device_train_batch_size=req.batch_size,
                                  gradient_accumulation_steps=req.gradient_accumulation_steps,
                                  max_length=req.max_length, seed=req.seed, data_seed=req.seed, **req.extra)
        if req.save_steps:
            kw.update(save_strategy="steps", save_steps=req.save_steps)
        if valid is not None:
            kw.update(eval_strategy="epoch")
        lora = LoraSettings(r=req.lora_r, alpha=req.lora_alpha, dropout=req.lora_dropout,
                            target_modules=req.lora_target_modules)
        config = {**asdict(req), "run_id": run.name}
        config.pop("threads")
        metrics = train_sft(req.model, train, valid, method=req.method, run_dir=run, lora=lora, merge=req.merge,
                            config=config, log=log, echo=echo,
                            card={"datasets": [Path(req.training_file).name]}, **kw)
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
    write_job(run, status="succeeded", finished=time.time(), model_dir=metrics.get("model_dir"))
    log("Job complete: status succeeded")
    return metrics


def create(req: JobRequest, base: str | Path | None = None, name: str | None = None,
           background: bool = False, overwrite: bool = False) -> Path:
    """Validate the request, write the run folder, and run it here (foreground) or detached (background)."""
    from hfrepro.finetune.jsonl import load_examples
    from hfrepro.finetune.sft import METHODS
    from hfrepro.models import resolve

    if req.method not in METHODS:
        raise UserError(f"unknown method {req.method!r}", fix=f"use one of: {', '.join(METHODS)}")
    if req.merge and req.method != "lora":
        raise UserError("--merge only applies to --method lora", fix="drop --merge (full and head runs already "
                                                                       "write complete weights)")
    # fail before any job exists: bad files, unknown model
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
    run.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for f in ("output.log", "stderr.log"):
            (run / f).unlink(missing_ok=True)
    atomic_write_json(run / "request.json", asdict(req))
    write_job(run, id=run_id, status="queued", created=time.time(), method=req.method, model=req.model,
              training_file=req.training_file, examples=n, pid=None, error=None, overwrite=overwrite)
    from hfrepro.finetune.sft import EventLog
    EventLog(run / "output.log", echo=not background)(
        f"Created fine-tune: {run_id} ({req.method} on {req.model}, {n:,} examples from "
        f"{Path(req.training_file).name})")
    if background:
        launch(run)
    else:
        execute(run, echo=True)
    return run


def launch(run: Path) -> int:
    """Start `python -m hfrepro.finetune.jobs RUN` detached from this terminal; returns its pid."""
    env = dict(os.environ)
    log = open(run / "stderr.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "hfrepro.finetune.jobs", str(run.resolve())],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env, cwd=os.getcwd())
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


def resume(run: Path, background: bool = False) -> Path:
    job = job_status(run)
    if job.get("status") in ACTIVE:
        raise UserError(f"run {run.name} is still {job['status']}", fix=f"hfrepro finetune follow {run.name}")
    if job.get("status") == "succeeded":
        raise UserError(f"run {run.name} already succeeded", fix=f"chat with it: hfrepro chat --model {run.name}")
    write_job(run, status="queued", error=None, pid=None)
    from hfrepro.finetune.sft import EventLog
    EventLog(run / "output.log", echo=not background)(f"Resuming fine-tune {run.name}")
    if background:
        launch(run)
    else:
        execute(run, echo=True)
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


def _main() -> None:
    run = Path(sys.argv[1])

    def _term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    try:
        execute(run, echo=False)
    except KeyboardInterrupt:
        sys.exit(130)
    except UserError as e:
        print(e.render(), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    _main()
