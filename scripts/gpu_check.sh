#!/usr/bin/env bash
# Every accelerate config (DDP, FSDP, DeepSpeed ZeRO-2, ZeRO-3) x clm, sft, PPO at the full budget in bf16 for a few
# steps on a GPU machine; one table of steps/s, peak memory and MFU (see scripts/gpu_check.py, docs/gpu_check.md).
#   bash scripts/gpu_check.sh              # a GPU machine (DeepSpeed rows: pip install deepspeed first)
#   bash scripts/gpu_check.sh --dry-run    # anywhere: configs load, every run's arguments validate
#   bash scripts/gpu_check.sh --cpu        # anywhere: DDP and FSDP measured on 2 CPU processes, tiny budget
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
exec "$PY" scripts/gpu_check.py "$@"
