"""Stage 7: fine-tuning. The library under `recipes/sft.py` (TRL's SFTTrainer: full | head-only | LoRA) and the
hosted JSONL workflow: `jsonl` (prepare-data's checks and fixes), `training_data` (the training sets, the
held-out task), `sft` (data formats, assistant-only loss, head-only, cost and progress log), `jobs` (create /
follow / list / cancel / resume), `chat` (multi-turn chat), `memory` (peak memory), `build_data` (data files)."""
