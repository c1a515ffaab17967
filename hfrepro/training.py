"""Shared training plumbing, written once: seeds, threads, CPU-sane defaults, run folders, resume,
NaN/inf guard, token counting, a JSONL training log.

A run folder (`RunDir`) looks like this:

    runs/<stage>/<name>/
        config.yaml        the resolved arguments of the run (secrets redacted)
        metrics.json       the numbers the run measured (merged as stages of the run finish)
        log.jsonl          one JSON object per logging step (loss, lr, epoch, tokens seen, ...)
        checkpoints/       Trainer checkpoints (resume picks the last one)
        model/             the final model folder: safetensors, config, tokenizer, README.md card
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_write_json, atomic_write_text, read_json


# --- seeds, threads, precision --------------------------------------------------------------------------

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


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads: `n`, else $HFREPRO_THREADS, else cores / local processes.

    On a small VM torch's default swings timings up to 10x (STACK.md); a fixed number keeps them stable.
    """
    import torch

    if n is None:
        omp = os.environ.get("OMP_NUM_THREADS")
        if omp == "1" and "ACCELERATE_DYNAMO_BACKEND" in os.environ:
            # `accelerate launch` exports OMP_NUM_THREADS=1 unless the config says use_cpu (ours cannot: it must
            # also use a GPU where there is one), which would leave a 2-core machine half idle. Ask for exactly
            # one thread with HFREPRO_THREADS=1 or --threads 1.
            omp = None
        env = os.environ.get("HFREPRO_THREADS") or omp
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        n = int(env) if env else max(1, (os.cpu_count() or 1) // local)
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


def use_cpu_without_accelerator() -> None:
    """Without a GPU, tell accelerate to use the CPU (ACCELERATE_USE_CPU=true), overriding the `False` that
    `accelerate launch` exports from a config with `use_cpu: false` (recipes/accelerate/cpu_2proc.yaml).
    Must happen before `TrainingArguments` is built: its __post_init__ sets up the process state."""
    import torch

    if not torch.cuda.is_available():
        os.environ["ACCELERATE_USE_CPU"] = "true"


def setup_runtime(seed: int | None = None, threads: int | None = None) -> int:
    """Call first in every recipe: fixes threads, makes multi-process CPU runs really distributed, seeds.

    Without a GPU, accelerate only forms a process group when told to use the CPU (`PartialState(cpu=True)`);
    otherwise each of N launched processes silently trains alone with world size 1. We set
    ACCELERATE_USE_CPU when no accelerator is present so Trainer, TRL and bare Accelerator all agree.
    Returns the number of torch threads per process.
    """
    use_cpu_without_accelerator()
    n = configure_threads(threads or None)
    if seed is not None:
        set_seed(seed)
    return n


def precision() -> dict[str, bool]:
    """bf16 only where the hardware has it (a CUDA GPU with bf16); fp32 on CPU.

    TRL's configs default to bf16=True, which fails on CPU ("Your setup doesn't support bf16/gpu").
    """
    import torch

    bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return {"bf16": bf16, "fp16": False}


def training_defaults(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments for `TrainingArguments` (or a TRL config) that are sane on any hardware."""
    on_gpu = precision()["bf16"]
    d: dict[str, Any] = dict(
        report_to="none",
        save_strategy="steps",
        save_total_limit=2,
        logging_strategy="steps",
        dataloader_num_workers=0,
        activation_checkpointing=False,  # transformers 5 name; `gradient_checkpointing` is its deprecated alias
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=False,
        **precision(),
    )
    if not on_gpu:
        d["dataloader_pin_memory"] = False
        d["use_cpu"] = not _has_accelerator()
    d.update(overrides)
    return d


def _has_accelerator() -> bool:
    import torch
    return bool(torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available()))


def make_training_args(cls=None, **kwargs: Any):
    """Build `cls` (default `TrainingArguments`) with `training_defaults` under the caller's values."""
    if cls is None:
        from transformers import TrainingArguments as cls  # noqa: N813
    import dataclasses
    names = {f.name for f in dataclasses.fields(cls)}
    merged = {k: v for k, v in training_defaults().items() if k in names}
    merged.update(kwargs)
    return cls(**merged)


def cpu_sane(args) -> Any:
    """Fix a parsed TrainingArguments/TRL config in place for this hardware: no bf16 on CPU, no
    gradient checkpointing on CPU, no reporting integrations unless asked."""
    p = precision()
    if not _has_accelerator() and hasattr(args, "use_cpu"):
        args.use_cpu = True
    if not p["bf16"]:
        if getattr(args, "bf16", False):
            args.bf16 = False
        if getattr(args, "fp16", False):
            args.fp16 = False
        no_activation_checkpointing(args)
    return args


def no_activation_checkpointing(args) -> None:
    """Turn activation (gradient) checkpointing off under both names: `gradient_checkpointing` only mirrors
    `activation_checkpointing` after construction, and the Trainer reads the new one (TRL configs default it on)."""
    for name in ("activation_checkpointing", "gradient_checkpointing"):
        if getattr(args, name, False):
            setattr(args, name, False)


def count_tokens_seen(args) -> None:
    """Make the Trainer count the (non-padding) tokens it trains on: "tokens seen" in logs and metrics."""
    if args.include_num_input_tokens_seen in (None, False, "no"):
        args.include_num_input_tokens_seen = "non_padding"


# --- run folders ----------------------------------------------------------------------------------------

IGNORED_FOR_RESUME = {"output_dir", "logging_dir", "resume", "overwrite", "push_to_hub", "hub_model_id",
                      "hub_private_repo", "private", "disable_tqdm", "report_to", "config"}


@dataclass
class RunDir:
    path: Path

    def __post_init__(self):
        self.path = Path(self.path)
        self.path.mkdir(parents=True, exist_ok=True)

    config_path = property(lambda self: self.path / "config.yaml")
    metrics_path = property(lambda self: self.path / "metrics.json")
    log_path = property(lambda self: self.path / "log.jsonl")
    checkpoints = property(lambda self: self.path / "checkpoints")
    model_dir = property(lambda self: self.path / "model")

    def saved_config(self) -> dict | None:
        if not self.config_path.is_file():
            return None
        return yaml.safe_load(self.config_path.read_text(encoding="utf-8"))

    def start(self, config: dict[str, Any], overwrite: bool = False) -> bool:
        """Record the resolved config. Returns True when this continues an earlier run with the same config.

        A folder holding a run with a *different* config is an error unless `overwrite`: mixing two runs'
        checkpoints would silently corrupt both.
        """
        old = self.saved_config()
        same = old is not None and _strip(old) == _strip(config)
        if old is not None and not same and not overwrite:
            diff = sorted(k for k in set(_strip(old)) | set(_strip(config))
                          if _strip(old).get(k) != _strip(config).get(k))
            raise UserError(f"{self.path} holds a run with a different config (differs in: {', '.join(diff[:8])})",
                            where=str(self.config_path),
                            fix="choose another output folder, or pass --overwrite to start this one afresh")
        if old is not None and not same and overwrite:
            import shutil
            for sub in ("checkpoints", "model"):
                shutil.rmtree(self.path / sub, ignore_errors=True)
            for f in (self.metrics_path, self.log_path):
                f.unlink(missing_ok=True)
        atomic_write_text(self.config_path, yaml.safe_dump(config, sort_keys=True, allow_unicode=True))
        return same

    def metrics(self) -> dict:
        return read_json(self.metrics_path) if self.metrics_path.is_file() else {}

    def write_metrics(self, new: dict[str, Any], replace: bool = False) -> dict:
        """Merge `new` into metrics.json (atomically)."""
        m = {} if replace else self.metrics()
        m.update(new)
        atomic_write_json(self.metrics_path, m)
        return m

    def last_checkpoint(self) -> str | None:
        return last_checkpoint(self.checkpoints)

    def log(self, record: dict[str, Any]) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"time": round(time.time(), 3), **record}, ensure_ascii=False) + "\n")


def _strip(cfg: dict) -> dict:
    return {k: v for k, v in (cfg or {}).items() if k not in IGNORED_FOR_RESUME}


def last_checkpoint(folder: str | Path) -> str | None:
    """The newest complete `checkpoint-N` folder (one with trainer_state.json), or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    cks = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
           and (p / "trainer_state.json").is_file()]
    return str(max(cks, key=lambda p: int(p.name.split("-")[-1]))) if cks else None


# --- Trainer callbacks ----------------------------------------------------------------------------------

def _callbacks_base():
    from transformers import TrainerCallback
    return TrainerCallback


class TrainingDiverged(UserError):
    pass


def callbacks(run: RunDir | None = None) -> list:
    """The callbacks every hfrepro Trainer gets: stop on NaN/inf loss; log to run/log.jsonl."""
    Base = _callbacks_base()

    class NaNGuard(Base):
        def on_log(self, args, state, control, logs=None, **kw):
            loss = (logs or {}).get("loss", (logs or {}).get("train_loss"))
            if loss is not None and not math.isfinite(float(loss)):
                ck = last_checkpoint(args.output_dir)
                raise TrainingDiverged(
                    f"training diverged: loss is {loss} at step {state.global_step}",
                    where=str(args.output_dir),
                    fix="lower the learning rate (or raise warmup / gradient clipping) and run again"
                        + (f"; the last good checkpoint is {ck}" if ck else ""))

    class JsonlLog(Base):
        def on_log(self, args, state, control, logs=None, **kw):
            if run is not None and state.is_world_process_zero and logs:
                run.log({"step": state.global_step, "max_steps": state.max_steps,
                         "epoch": round(state.epoch or 0.0, 4), "tokens_seen": state.num_input_tokens_seen,
                         **{k: v for k, v in logs.items() if isinstance(v, (int, float, str))}})

    return [NaNGuard(), JsonlLog()]


def check_finite(loss: float, step: int, where: str) -> None:
    """For hand-written loops: the same NaN/inf stop as the Trainer callback."""
    if not math.isfinite(loss):
        raise TrainingDiverged(f"training diverged: loss is {loss} at step {step}", where=where,
                               fix="lower the learning rate (or add gradient clipping) and run again")


# --- hand-written loops: checkpoint and resume ----------------------------------------------------------

def save_loop_checkpoint(folder: str | Path, model, optimizer, step: int, extra: dict | None = None,
                         keep: int = 2) -> Path:
    """Atomically save a hand-written loop's state: weights as safetensors, optimizer + RNG with torch."""
    import torch
    from safetensors.torch import save_file

    from hfrepro.fsutil import atomic_dir

    folder = Path(folder)
    with atomic_dir(folder / f"checkpoint-{step}") as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()},
                  str(tmp / "model.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                    "python_rng": random.getstate()}, tmp / "optimizer.pt")
        atomic_write_json(tmp / "state.json", {"step": step, **(extra or {})})
        (tmp / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    old = sorted((p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                 key=lambda p: int(p.name.split("-")[-1]))
    import shutil
    for p in old[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    return folder / f"checkpoint-{step}"


def load_loop_checkpoint(folder: str | Path, model, optimizer) -> dict | None:
    """Restore the newest loop checkpoint into `model`/`optimizer`; returns its state dict or None."""
    import torch
    from safetensors.torch import load_file

    ck = last_checkpoint(folder)
    if ck is None:
        return None
    model.load_state_dict(load_file(str(Path(ck) / "model.safetensors")))
    st = torch.load(Path(ck) / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(st["optimizer"])
    torch.set_rng_state(st["torch_rng"])
    random.setstate(st["python_rng"])
    return read_json(Path(ck) / "state.json")
