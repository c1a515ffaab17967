"""The floor every recipe stands on: processes, threads, seeds, Trainer defaults, and the run folder.

    from hfrepro import runtime
    runtime.setup(seed=0)                                  # threads, CPU-only process groups, seeds
    run = runtime.Run.begin("runs/clm", config)            # lock, record the config, find where to resume
    if run.finished:                                       # the same command again: nothing to do
        return run.metrics()
    trainer = Trainer(..., callbacks=run.callbacks())
    trainer.train(resume_from_checkpoint=run.resume_from)  # the Trainer's own checkpoints
    run.finish({"test_loss": ...})                         # metrics.json, status.json; the lock is released

A run folder is a Hugging Face model repository with the run's record beside it:

    runs/<name>/
        config.json, model.safetensors, tokenizer*, README.md     the model (Trainer.save_model()), its card
        config.yaml     the resolved arguments (secrets redacted): `--config config.yaml` replays the run
        metrics.json    what the run measured
        log.jsonl       one JSON object per logging step
        status.json     running | finished, when, and when last checked
        checkpoint-N/   the Trainer's checkpoints (never uploaded)
        .lock           held by the one process writing the folder

This module imports nothing of hfrepro above `errors` and `fsutil`.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import fcntl
import gc
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_write_json, atomic_write_text, read_json

# --- processes ---------------------------------------------------------------------------------------------


def has_accelerator() -> bool:
    import torch
    return bool(torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available()))


def use_cpu_without_accelerator() -> None:
    """Without a GPU, tell accelerate to use the CPU (ACCELERATE_USE_CPU=true), in fp32, and let its FSDP run there.

    Without it, N processes launched on a CPU-only machine never form a process group: each trains alone with
    world size 1 (STACK.md). It overrides the `False` that `accelerate launch` exports from a config with
    `use_cpu: false`, and must happen before anything builds accelerate's state (TrainingArguments does).
    A config's bf16/fp16 mixed precision is for GPUs: on a CPU the run is fp32, as budgets are (config.py).
    An FSDP config (recipes/accelerate/fsdp.yaml) really shards on CPU processes too: see `allow_fsdp_on_cpu`."""
    if not has_accelerator():
        os.environ["ACCELERATE_USE_CPU"] = "true"
        if os.environ.get("ACCELERATE_MIXED_PRECISION", "no") != "no":
            os.environ["ACCELERATE_MIXED_PRECISION"] = "no"
        if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
            allow_fsdp_on_cpu()


def allow_fsdp_on_cpu() -> None:
    """Make accelerate apply its FSDP plugin to CPU processes (gloo) instead of silently falling back to DDP.

    accelerate 1.15 turns an FSDP launch into FSDP only on accelerators (AcceleratorState lists MULTI_GPU,
    MULTI_XPU, ... but not MULTI_CPU), so `accelerate launch --config_file fsdp.yaml` on a CPU machine trains
    with plain DDP while the config says FSDP. torch's FSDP2 (`fully_shard`) itself works on CPU over gloo; this
    lets AcceleratorState take the plugin there too, so the CPU run exercises the same sharded code path as a
    GPU run (tests/test_fsdp.py checks the world size, that the model is sharded, and the loss)."""
    from accelerate import state as accelerate_state
    from accelerate.utils import DistributedType

    cls = accelerate_state.AcceleratorState
    if getattr(cls, "_hfrepro_fsdp_on_cpu", False):
        return
    original = cls.__init__

    def __init__(self, *args, fsdp_plugin=None, **kwargs):
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin
            accelerate_state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    cls.__init__ = __init__
    cls._hfrepro_fsdp_on_cpu = True


def process_state():
    """accelerate's PartialState under the one rule above: on the CPU when there is no accelerator."""
    from accelerate import PartialState

    use_cpu_without_accelerator()
    return PartialState(cpu=not has_accelerator())


def is_main_process() -> bool:
    return process_state().is_main_process


def wait_for_everyone() -> None:
    process_state().wait_for_everyone()


# --- threads, seeds, precision -----------------------------------------------------------------------------

def flush_denormals() -> bool:
    """Treat denormal floats (|x| < 1.2e-38 in fp32) as zero on the CPU (x86 FTZ/DAZ; threads started later
    inherit it). An x86 core computes with them many times slower than with normal numbers, and training makes
    them: Adam's second moment is the square of the gradient, and the output layer's rows for the thousands of
    tokens a model gives almost no probability get gradients near 1e-20 (squares near 1e-40); a gradient that
    stays zero decays by beta2 every step into that range too. Measured (docs/DEVELOPING.md, "Denormals"):
    head-only fine-tuning of SmolLM2 in 0.52 of the time, the GRU translator 0.87, with the same results, bit
    for bit. A no-op where the CPU cannot (returns False); `HFREPRO_DENORMALS=keep` keeps them."""
    import torch

    if os.environ.get("HFREPRO_DENORMALS", "").lower() == "keep":
        return False
    return bool(torch.set_flush_denormal(True))


PRECISIONS = ("fp32", "bf16")  # `--precision` of every recipe
MAIN_JOB_PRECISIONS = ("auto", *PRECISIONS)  # `hfrepro reproduce --precision`: auto picks one of the two
PRECISION_ENV = "HFREPRO_PRECISION"  # how `hfrepro reproduce --precision` reaches its stage processes


CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo() -> str:
    try:
        return CPUINFO.read_text(errors="replace")
    except OSError:
        return ""


def cpu_has_amx(cpuinfo: str | None = None) -> bool:
    """Whether the CPU multiplies bf16 matrices in tiles (Intel AMX: Xeon Sapphire Rapids and later; read from
    Linux's /proc/cpuinfo, or the `cpuinfo` text already read from it, so False elsewhere)."""
    return "amx_bf16" in (_cpuinfo() if cpuinfo is None else cpuinfo)


def cpu_bf16(cpuinfo: str | None = None) -> str:
    """The CPU's hardware for bf16 products, as Linux's /proc/cpuinfo (or the `cpuinfo` text already read from it)
    names it: "AMX" (Intel Xeon Sapphire Rapids and later), "AVX512-BF16" (AMD Zen 4 and later, Intel Cooper
    Lake: bf16 dot products in vector registers), or "" (none known: bf16 is emulated, slower than fp32)."""
    info = _cpuinfo() if cpuinfo is None else cpuinfo
    return "AMX" if cpu_has_amx(info) else "AVX512-BF16" if "avx512_bf16" in info else ""


def cpu_name() -> str:
    """The CPU's model name and its bf16 hardware, for a report's header ("AMD EPYC, AVX512-BF16, no AMX"): fp32
    training adds floats in a CPU-specific order, and `--precision auto` follows AMX, so a run's numbers depend on
    both. Linux's /proc/cpuinfo; elsewhere `platform.processor()` alone."""
    import platform

    info = _cpuinfo()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name") and ":" in line), "") or platform.processor() or "unknown CPU"
    hardware = {"AMX": "AMX", "AVX512-BF16": "AVX512-BF16, no AMX"}.get(cpu_bf16(info), "no bf16 hardware")
    return f"{name}, {hardware}" if info else name


def check_precision(name: str, where: str = "--precision", choices: tuple[str, ...] = PRECISIONS) -> str:
    """`name` if it is one of `choices` (the first is the default), else one clear message."""
    if name not in choices:
        raise UserError(f"unknown precision {name!r}", where=where,
                        fix=f"use one of: {', '.join(choices)} ({choices[0]} is the default; docs/DEVELOPING.md, "
                            "\"Mixed precision on the CPU\")")
    return name


def set_cpu_precision(name: str = "fp32") -> str:
    """fp32 (the default): every product in fp32. bf16: mixed precision on the CPU, as `--bf16` is on a GPU:
    torch's CPU autocast runs matrix products (linear, matmul, bmm, attention) in bfloat16 and keeps weights,
    gradients, optimizer states, losses and normalisations in fp32. It is set for the whole process, so a
    recipe's Trainer, its own loops and its evaluation all run under it; its cache of bf16 weight copies is
    off (a copy cached across an optimizer step would be stale). Worth it where the CPU has bf16 hardware
    (`cpu_bf16`: AMX, or AVX512-BF16, where a SmolLM2-135M training step runs about 1.7x as fast as in fp32);
    elsewhere bf16 is emulated and slower. The numbers change (bf16 keeps 8 bits of
    mantissa): a run's config.yaml records its precision, and the main job's verdicts at `--precision bf16`
    are its own (docs/DEVELOPING.md, "Mixed precision on the CPU"). GPUs: use the trainers' `--bf16`."""
    import torch

    check_precision(name)
    bf16 = name == "bf16"
    if bf16:
        if not cpu_bf16() and not has_accelerator():
            print("note: --precision bf16 on a CPU without bf16 hardware (AMX or AVX512-BF16): its bf16 products "
                  "are emulated and likely slower than fp32", file=sys.stderr, flush=True)
        torch.set_autocast_dtype("cpu", torch.bfloat16)
        torch.set_autocast_cache_enabled(False)
    elif not torch.is_autocast_cache_enabled():
        torch.set_autocast_cache_enabled(True)
    torch.set_autocast_enabled("cpu", bf16)
    return name


def resolve_precision(name: str) -> str:
    """`hfrepro reproduce --precision auto` (its default): bf16 where the CPU has AMX and no accelerator is used,
    fp32 elsewhere; fp32 and bf16 as asked. Not on AVX512-BF16 alone, though bf16 is faster there too: on such a
    CPU two of the claims that hold at every seed in fp32 changed with the seed in bf16 (docs/CLAIMS.md,
    "bf16 on a CPU with AVX512-BF16")."""
    if check_precision(name, choices=MAIN_JOB_PRECISIONS) != "auto":
        return name
    return "bf16" if cpu_bf16() == "AMX" and not has_accelerator() else "fp32"


def main_job_precision() -> str:
    """The precision of the main job's stages: `hfrepro reproduce --precision` sets it for its stage processes."""
    return check_precision(os.environ.get(PRECISION_ENV) or "fp32", where=f"${PRECISION_ENV}")


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads: `n`, else $HFREPRO_THREADS, else cores / local processes.

    On a small VM torch's default swings timings up to 10x (STACK.md); a fixed number keeps them stable.
    `accelerate launch` exports OMP_NUM_THREADS=1 unless its config says use_cpu (ours cannot: it must also
    use a GPU where there is one), which would leave a 2-core machine half idle: that value is ignored.
    """
    import torch

    if not n:
        omp = os.environ.get("OMP_NUM_THREADS")
        if omp == "1" and "ACCELERATE_DYNAMO_BACKEND" in os.environ:
            omp = None
        env = os.environ.get("HFREPRO_THREADS") or omp
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        n = int(env) if env else max(1, (os.cpu_count() or 1) // local)
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


# The thread pools besides torch's: OpenMP, MKL and OpenBLAS (numpy, scipy, scikit-learn), rayon (tokenizers).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")


def thread_env(n: int) -> dict[str, str]:
    """The environment of a child process given `n` cores: every thread pool it may start held to `n`, so that
    two processes side by side on two cores do not each start a pool as wide as the machine."""
    return {**os.environ, **{v: str(n) for v in THREAD_VARS}}


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc's malloc_trim). Between the steps of a long
    process: without it the heap keeps what earlier steps freed, scattered, and the next step's models and
    activations grow the process past it (the rlhf stage's last evaluation: 3.07 GB at its peak, 2.41 GB with this
    before each evaluation)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; on CPU this makes the same command give the same numbers."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def setup(seed: int | None = None, threads: int | None = None, precision: str = "fp32") -> int:
    """Call first in every recipe: CPU-only process groups, denormals off, the CPU's precision, threads, seeds.
    Returns threads per process."""
    use_cpu_without_accelerator()
    flush_denormals()
    set_cpu_precision(precision)
    n = configure_threads(threads or None)
    if seed is not None:
        set_seed(seed)
    return n


def precision() -> dict[str, bool]:
    """bf16 only where the hardware has it (a CUDA GPU with bf16); fp32 on CPU.

    TRL's configs default to bf16=True, which fails on CPU ("Your setup doesn't support bf16/gpu")."""
    import torch

    bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return {"bf16": bf16, "fp16": False}


# --- Trainer arguments that are sane on any hardware -------------------------------------------------------

def training_defaults(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments for `TrainingArguments` (or a TRL config) that are sane on any hardware."""
    d: dict[str, Any] = dict(
        report_to="none", save_strategy="steps", save_total_limit=2, logging_strategy="steps",
        dataloader_num_workers=0, activation_checkpointing=False, include_num_input_tokens_seen="non_padding",
        disable_tqdm=False, **precision())
    if not d["bf16"]:
        d["dataloader_pin_memory"] = False
        d["use_cpu"] = not has_accelerator()
    d.update(overrides)
    return d


def make_training_args(cls=None, **kwargs: Any):
    """Build `cls` (default `TrainingArguments`) with `training_defaults` under the caller's values."""
    import dataclasses

    if cls is None:
        from transformers import TrainingArguments as cls  # noqa: N813
    names = {f.name for f in dataclasses.fields(cls)}
    merged = {k: v for k, v in training_defaults().items() if k in names}
    merged.update(kwargs)
    return cls(**merged)


def cpu_sane(args) -> Any:
    """Fix a parsed TrainingArguments / TRL config in place for this hardware: no bf16 and no activation
    checkpointing on CPU, and count the tokens trained on ("tokens seen" in logs and metrics)."""
    if not has_accelerator():
        if hasattr(args, "use_cpu"):
            args.use_cpu = True
        if getattr(args, "dataloader_pin_memory", False):
            args.dataloader_pin_memory = False  # pinned memory needs a GPU
    if not precision()["bf16"]:
        for name in ("bf16", "fp16"):
            if getattr(args, name, False):
                setattr(args, name, False)
        # `gradient_checkpointing` only mirrors `activation_checkpointing` after construction, and the
        # Trainer reads the new name (TRL configs default it on): turn both off.
        for name in ("activation_checkpointing", "gradient_checkpointing"):
            if getattr(args, name, False):
                setattr(args, name, False)
    if getattr(args, "include_num_input_tokens_seen", "no") in (None, False, "no"):
        args.include_num_input_tokens_seen = "non_padding"
    return args


# --- checkpoints -------------------------------------------------------------------------------------------

def checkpoints(folder: str | Path) -> list[Path]:
    """`checkpoint-N` folders under `folder`, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.rsplit("-", 1)[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[-1]))


def checkpoint_step(path: str | Path) -> int:
    return int(Path(path).name.rsplit("-", 1)[-1])


def _complete(ck: Path) -> bool:
    try:
        state = read_json(ck / "trainer_state.json")
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "global_step" in state


def last_checkpoint(folder: str | Path, warn: bool = True) -> str | None:
    """The newest complete checkpoint (its trainer_state.json reads); a broken newer one is skipped with a
    warning, so a run killed while saving resumes from the one before."""
    for ck in reversed(checkpoints(folder)):
        if _complete(ck):
            return str(ck)
        if warn:
            print(f"warning: {ck} is incomplete or corrupt (trainer_state.json does not read); "
                  "resuming from the checkpoint before it", file=sys.stderr)
    return None


# --- the run folder ----------------------------------------------------------------------------------------

# Arguments that say where or how a run is watched, not what it computes: a change in them continues the run.
NOT_PART_OF_RESULT = {"output_dir", "overwrite", "resume_from_checkpoint", "push_to_hub", "hub_model_id",
                      "hub_private_repo", "hub_token", "disable_tqdm", "report_to", "logging_dir", "wait",
                      "threads", "config", "run_name", "hub_strategy", "save_total_limit", "project",
                      "trackio_space_id", "trackio_bucket_id", "trackio_static_space_id"}
RECORD_FILES = ("config.yaml", "metrics.json", "log.jsonl", "status.json")


class Run:
    """One run folder, one writer. Build it with `Run.begin`; see the module docstring."""

    def __init__(self, path: Path, config: dict, resume_from: str | None, finished: bool, lock_fd: int | None):
        self.path, self.config, self.resume_from, self.finished = path, config, resume_from, finished
        self._lock_fd = lock_fd
        self.is_main = lock_fd is not None or not _distributed()

    # -- paths --
    config_path = property(lambda self: self.path / "config.yaml")
    metrics_path = property(lambda self: self.path / "metrics.json")
    log_path = property(lambda self: self.path / "log.jsonl")
    status_path = property(lambda self: self.path / "status.json")

    @classmethod
    def begin(cls, output_dir: str | Path, config: dict[str, Any], overwrite: bool = False,
              resume_from_checkpoint: str | bool | None = None, wait: bool = False) -> "Run":
        """Take the folder for this run (only after the arguments validated: a refused start leaves nothing).

        - a folder holding another config is refused unless `overwrite`; `overwrite` always starts afresh;
        - the same config, finished: `finished` is True and nothing is written but `status.json`'s last_checked;
        - the same config, unfinished: resume from the last complete checkpoint;
        - `resume_from_checkpoint`: a checkpoint path, or True/"true" for the last one in this folder.
        In a multi-process launch the main process does all of it and the others wait, then read.
        """
        path = Path(output_dir)
        if not _distributed() or is_main_process():
            run = cls._begin_main(path, config, overwrite, resume_from_checkpoint, wait)
        if _distributed():
            wait_for_everyone()
            if not is_main_process():
                st = _read_status(path)
                run = cls(path, config, _resume_point(path, resume_from_checkpoint, same=True, warn=False),
                          st.get("status") == "finished", None)
        return run

    @classmethod
    def _begin_main(cls, path, config, overwrite, resume_from_checkpoint, wait) -> "Run":
        check_writable_folder(path)
        fd = lock_folder(path, wait)
        try:
            saved = _saved_config(path)
            same = saved is not None and _result_keys(saved) == _result_keys(config)
            if saved is not None and not same and not _holds_results(path):
                _clear(path)  # a start that was refused or failed before producing anything blocks nothing
                saved = None
            if saved is not None and not same and not overwrite:
                diff = sorted(k for k in set(_result_keys(saved)) | set(_result_keys(config))
                              if _result_keys(saved).get(k) != _result_keys(config).get(k))
                raise UserError(f"{path} holds a run with a different config (differs in: {', '.join(diff[:8])})",
                                where=str(path / "config.yaml"),
                                fix="choose another --output_dir, or pass --overwrite to start this one afresh")
            if overwrite and any(p.name != ".lock" for p in path.iterdir()):
                _clear(path)
                saved, same = None, False
            status = _read_status(path)
            if same and status.get("status") == "finished" and not resume_from_checkpoint:
                atomic_write_json(path / "status.json", {**status, "last_checked": _now()})
                run = cls(path, config, None, True, fd)
                run.close()
                return run
            resume = _resume_point(path, resume_from_checkpoint, same)
            if resume or same:  # a killed run's rows after its checkpoint (all of them, without one) are logged again
                _truncate_log(path / "log.jsonl", checkpoint_step(resume) if resume else 0)
            atomic_write_text(path / "config.yaml", yaml.safe_dump(config, sort_keys=True, allow_unicode=True))
            atomic_write_json(path / "status.json", {"status": "running", "started": status.get("started") or _now(),
                                                     "pid": os.getpid(), "resumed_from": resume})
            return cls(path, config, resume, False, fd)
        except BaseException:
            unlock_folder(fd)
            raise

    # -- the record --
    def metrics(self) -> dict:
        return read_json(self.metrics_path) if self.metrics_path.is_file() else {}

    def write_metrics(self, new: dict[str, Any]) -> dict:
        """Merge `new` into metrics.json (atomically; main process only)."""
        m = {**self.metrics(), **new}
        if self.is_main:
            atomic_write_json(self.metrics_path, m)
        return m

    def log(self, record: dict[str, Any]) -> None:
        if self.is_main:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"time": round(time.time(), 3), **record}, ensure_ascii=False) + "\n")

    def read_log(self) -> list[dict]:
        return read_log(self.log_path)

    def callbacks(self) -> list:
        """The callbacks every hfrepro Trainer gets: stop on a NaN/inf loss; log to log.jsonl."""
        return trainer_callbacks(self)

    def finish(self, metrics: dict[str, Any] | None = None) -> dict:
        """Write the final metrics and mark the run finished; release the folder. After a resume, `train_loss`
        is the loss over the whole run (from log.jsonl), not over the resumed steps only."""
        metrics = dict(metrics or {})
        if self.resume_from and "train_loss" in metrics:
            whole = whole_run_loss(self.read_log())
            if whole is not None:
                metrics["train_loss"] = whole
        m = self.write_metrics(metrics)
        if self.is_main:
            st = _read_status(self.path)
            atomic_write_json(self.status_path, {**st, "status": "finished", "finished": _now(),
                                                 "last_checked": _now()})
        self.close()
        return m

    def close(self) -> None:
        if self._lock_fd is not None:
            unlock_folder(self._lock_fd)
            self._lock_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def check_writable_folder(path: Path) -> None:
    """Create `path` if needed; a UserError if it is a file or cannot be written."""
    if path.exists() and not path.is_dir():
        raise UserError(f"the output folder {path} is a file", where=str(path),
                        fix="choose another --output_dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the output folder {path}: {e.strerror}", where=str(path),
                        fix="choose a --output_dir you can write to") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"the output folder {path} is not writable", where=str(path),
                        fix="choose a --output_dir you can write to, or fix its permissions")


def lock_folder(path: Path, wait: bool = False) -> int:
    """Take `path/.lock` (one writer per folder); a UserError naming the holder's pid if taken, unless `wait`.
    The lock goes with the process: a killed run leaves nothing to clean up."""
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise UserError(f"{path} is being written by another run (pid {holder})", where=str(path / ".lock"),
                        fix="wait for it to finish, pass --wait to queue behind it, or choose another "
                            "--output_dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def unlock_folder(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)  # an idle folder's lock file is empty: a no-op re-run leaves the folder as it was
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _saved_config(path: Path) -> dict | None:
    f = path / "config.yaml"
    if not f.is_file():
        return None
    try:
        return yaml.safe_load(f.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return {"<unreadable config.yaml>": True}


def _result_keys(cfg: dict) -> dict:
    return {k: v for k, v in (cfg or {}).items() if k not in NOT_PART_OF_RESULT}


def _read_status(path: Path) -> dict:
    try:
        return read_json(path / "status.json")
    except (OSError, ValueError):
        return {}


def _holds_results(path: Path) -> bool:
    """Anything worth protecting: a finished run, checkpoints, metrics, models, sub-runs (everything but the
    lock, the recorded config and status, and a log)."""
    if _read_status(path).get("status") == "finished":
        return True
    return any(p.name not in (".lock", "config.yaml", "status.json", "log.jsonl") and not p.name.startswith(".")
               for p in path.iterdir())


def whole_run_loss(rows: list[dict]) -> float | None:
    """The training loss over every step logged: each logged `loss` (a mean over the steps since the row before)
    weighted by its number of steps."""
    pts = sorted((r["step"], float(r["loss"])) for r in rows if "loss" in r and r.get("step") is not None)
    total = steps = 0.0
    prev = 0
    for step, loss in pts:
        if step > prev:
            total += loss * (step - prev)
            steps += step - prev
            prev = step
    return total / steps if steps else None


def _clear(path: Path) -> None:
    for p in path.iterdir():
        if p.name == ".lock":
            continue
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def _resume_point(path: Path, requested: str | bool | None, same: bool, warn: bool = True) -> str | None:
    if requested in (None, False, "", "false", "False"):
        return last_checkpoint(path, warn=warn) if same else None
    if requested in (True, "true", "True"):
        ck = last_checkpoint(path, warn=warn)
        if ck is None:
            raise UserError(f"--resume_from_checkpoint true: no complete checkpoint in {path}",
                            fix="run without --resume_from_checkpoint, or name a checkpoint folder")
        return ck
    ck = Path(str(requested))
    if not (ck.is_dir() and _complete(ck)):
        raise UserError(f"--resume_from_checkpoint {ck}: not a complete checkpoint folder", where=str(ck),
                        fix="name a checkpoint-N folder holding trainer_state.json, or pass true for the last one")
    return str(ck)


def read_log(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows written after `step`: the killed run logged them, the resumed run logs them again."""
    rows = read_log(path)
    keep = [r for r in rows if r.get("step") is None or r["step"] <= step]
    if len(keep) != len(rows):
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep))


# --- Trainer callbacks -------------------------------------------------------------------------------------

class TrainingDiverged(UserError):
    pass


def check_finite(loss: float, step: int, where: str) -> None:
    """Stop on a NaN/inf loss with a message that says what to change."""
    if not math.isfinite(loss):
        raise TrainingDiverged(f"training diverged: loss is {loss} at step {step}", where=where,
                               fix="lower the learning rate (or raise warm-up / gradient clipping) and run again")


def trainer_callbacks(run: Run | None = None) -> list:
    """NaN/inf guard and log.jsonl rows for a transformers/TRL Trainer (transformers is imported here,
    not at start-up)."""
    from transformers import TrainerCallback

    class NaNGuard(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            loss = (logs or {}).get("loss", (logs or {}).get("train_loss"))
            if loss is not None:
                check_finite(float(loss), state.global_step, str(args.output_dir))

    class JsonlLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if run is not None and state.is_world_process_zero and logs:
                run.log({"step": state.global_step, "max_steps": state.max_steps,
                         "epoch": round(state.epoch or 0.0, 4), "tokens_seen": state.num_input_tokens_seen,
                         **{k: v for k, v in logs.items() if isinstance(v, (int, float, str))}})

    return [NaNGuard(), JsonlLog()]
