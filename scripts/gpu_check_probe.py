"""Run one recipe in-process (`python gpu_check_probe.py RECIPE ARGS...`, under `accelerate launch`) with a probe
that writes $GPU_CHECK_PROBE/rank<R>.json at the end of training: world size, accelerate's distributed type, steps,
the wall time of the steps after the first (warm-up left out), the Trainer's FLOPs for those steps, peak memory.
A Trainer recipe is probed by a callback; `ppo` (hfrepro's own loop) by wrapping `PPOTrainer.train` (its updates).

With GPU_CHECK_PARSE_ONLY=1 the recipe parses and validates its arguments exactly as it would, then stops.
"""

import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hfrepro import runtime  # noqa: E402

_callbacks = runtime.trainer_callbacks


def _peak_memory() -> int:
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _with_probe(run=None):
    from transformers import TrainerCallback

    class Probe(TrainerCallback):
        t0, first_step_flos = None, 0.0

        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 1:
                import torch
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self.t0, self.first_step_flos = time.perf_counter(), state.total_flos

        def on_train_end(self, args, state, control, **kw):
            import torch
            import torch.distributed as dist
            from accelerate.state import AcceleratorState

            if torch.cuda.is_available():
                torch.cuda.synchronize()
            secs = time.perf_counter() - self.t0 if self.t0 else 0.0
            rec = {"world_size": dist.get_world_size() if dist.is_initialized() else 1,
                   "distributed_type": str(AcceleratorState().distributed_type), "steps": state.global_step - 1,
                   "seconds": secs, "total_flos": float(state.total_flos - self.first_step_flos),
                   "peak_memory_bytes": _peak_memory()}
            _write(rec)

    return _callbacks(run) + [Probe()]


def _write(rec: dict) -> None:
    Path(os.environ["GPU_CHECK_PROBE"], f"rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(rec))


def _probe_ppo() -> None:
    """hfrepro's PPO is not a Trainer (no callbacks): wrap PPOTrainer.train and read its per-update records
    (`update_seconds` of each update after the first) once it returns. No FLOP count: MFU stays empty."""
    from hfrepro.rlhf.ppo import PPOTrainer

    train = PPOTrainer.train

    def probed(self, *a, **kw):
        out = train(self, *a, **kw)
        rows = self.log_history[1:]
        _write({"world_size": self.accelerator.num_processes,
                "distributed_type": str(self.accelerator.distributed_type), "steps": len(rows),
                "seconds": sum(r["update_seconds"] for r in rows), "total_flos": 0.0,
                "peak_memory_bytes": _peak_memory()})
        return out

    PPOTrainer.train = probed


class _Parsed(Exception):
    pass


def main() -> None:
    runtime.trainer_callbacks = _with_probe
    if sys.argv[1] == "ppo":
        _probe_ppo()
    recipe = __import__(f"hfrepro.recipes.{sys.argv[1]}", fromlist=["cli"])
    if os.environ.get("GPU_CHECK_PARSE_ONLY"):
        real = recipe.parse_args

        def parse_then_stop(*a, **kw):
            real(*a, **kw)
            raise _Parsed

        recipe.parse_args = parse_then_stop
        try:
            recipe.cli(sys.argv[2:])
        except _Parsed:
            print(f"{sys.argv[1]}: arguments valid")
            return
        raise SystemExit(f"{sys.argv[1]}: parse_args was never called")
    recipe.cli(sys.argv[2:])


if __name__ == "__main__":
    main()
