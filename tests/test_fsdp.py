"""Beyond one process (issue 19): `clm` (transformers' Trainer) and `sft` (TRL's SFTTrainer) run a few steps under
the FSDP accelerate config (recipes/accelerate/fsdp.yaml) on 2 CPU processes over gloo, really sharded, and give
the losses of the same run on one process.

accelerate 1.15 silently trains an FSDP config as plain DDP on a CPU-only machine (its AcceleratorState applies
the FSDP plugin only on accelerators); `hfrepro.runtime.allow_fsdp_on_cpu` lets the plugin apply there too. A probe
callback records, in each process, the world size, accelerate's distributed type and how many parameter elements
the process holds, so the test sees the sharding rather than trusting the config."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from finetune_helpers import tiny_model_dir  # noqa: F401  (fixture)

from tests.conftest import REPO

pytestmark = pytest.mark.integration

PROBE = '''
import json, os, sys
from hfrepro import runtime

_callbacks = runtime.trainer_callbacks


def _with_probe(run=None):
    from transformers import TrainerCallback

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            import torch.distributed as dist
            from accelerate.state import AcceleratorState
            from torch.distributed.tensor import DTensor

            params = list(model.parameters())
            rec = {"world_size": dist.get_world_size() if dist.is_initialized() else 1,
                   "distributed_type": str(AcceleratorState().distributed_type),
                   "sharded_params": sum(isinstance(p, DTensor) for p in params), "params": len(params),
                   "local_numel": sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in params),
                   "full_numel": sum(p.numel() for p in params)}
            with open(os.path.join(os.environ["PROBE_OUT"], f"rank{os.environ.get('RANK', '0')}.json"), "w") as f:
                json.dump(rec, f)

    return _callbacks(run) + [Probe()]


runtime.trainer_callbacks = _with_probe
__import__(f"hfrepro.recipes.{sys.argv[1]}", fromlist=["cli"]).cli(sys.argv[2:])
'''


def _run(tmp: Path, name: str, recipe: str, argv: list[str], fsdp: bool) -> tuple[list[dict], list[float]]:
    probe_dir = tmp / f"probe-{name}"
    probe_dir.mkdir()
    probe = tmp / "probe.py"
    probe.write_text(PROBE)
    launch = ([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "recipes" / "accelerate" / "fsdp.yaml")] if fsdp else [sys.executable])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HFREPRO_THREADS": "1", "PROBE_OUT": str(probe_dir),
           "PYTHONPATH": str(REPO)}
    out = tmp / name
    r = subprocess.run([*launch, str(probe), recipe, *argv, "--output_dir", str(out)], capture_output=True,
                       text=True, env=env, cwd=tmp, timeout=1800)
    assert r.returncode == 0, r.stderr[-4000:]
    probes = [json.loads(p.read_text()) for p in sorted(probe_dir.glob("rank*.json"))]
    losses = [row["loss"] for row in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "loss" in row]
    return probes, losses


def _check(tmp: Path, recipe: str, argv: list[str], per_device: int):
    sharded, loss2 = _run(tmp, "fsdp", recipe, [*argv, "--per_device_train_batch_size", str(per_device)], True)
    single, loss1 = _run(tmp, "single", recipe, [*argv, "--per_device_train_batch_size", str(2 * per_device)], False)
    assert [p["world_size"] for p in sharded] == [2, 2]
    assert all(p["distributed_type"] == "DistributedType.FSDP" for p in sharded)
    assert all(p["sharded_params"] == p["params"] and p["local_numel"] < p["full_numel"] for p in sharded)
    assert sum(p["local_numel"] for p in sharded) >= sharded[0]["full_numel"]  # two halves make the whole
    assert single[0]["world_size"] == 1 and single[0]["sharded_params"] == 0
    assert len(loss1) == len(loss2) >= 3
    assert loss2 == pytest.approx(loss1, rel=1e-3), (loss1, loss2)  # same global batch, same data, same steps
    return loss1


def test_clm_under_fsdp_on_two_cpu_processes(tmp_path):
    losses = _check(tmp_path, "clm", ["--budget", "tiny", "--max_steps", "4", "--logging_steps", "1",
                                      "--eval_strategy", "no", "--save_strategy", "no", "--seed", "0"], per_device=4)
    assert losses[-1] < losses[0]  # it trains


def test_sft_under_fsdp_on_two_cpu_processes(tmp_path, tiny_model_dir):  # noqa: F811
    data = tmp_path / "d.jsonl"
    pos = {"cat": "noun", "dog": "noun", "king": "noun", "queen": "noun", "run": "verb", "walk": "verb",
           "red": "adjective", "slowly": "adverb"}
    rows = [{"prompt": f"{w}{i} ->", "completion": f" {p}"} for i in range(4) for w, p in pos.items()]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))  # 32 distinct rows
    losses = _check(tmp_path, "sft", ["--model", str(tiny_model_dir), "--train_file", str(data), "--method", "full",
                                      "--max_steps", "4", "--logging_steps", "1", "--learning_rate", "1e-3",
                                      "--save_strategy", "no", "--seed", "0"], per_device=4)
    assert losses[-1] < losses[0]
