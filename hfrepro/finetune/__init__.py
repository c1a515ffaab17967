"""Stage 5: fine-tuning. The hosted JSONL workflow (prepare-data -> create -> follow -> chat), transfer
learning (head-only) vs full fine-tuning vs LoRA, all with TRL's SFTTrainer.

    from hfrepro.finetune.sft import train_sft        # the core SFT API (used by stage 6 too)
    metrics = train_sft("smollm2-135m-instruct", rows, method="lora", run_dir="runs/finetune/x")

Modules: `sft` (training), `jsonl` (prepare-data checks and fixes), `jobs` (run folders, background jobs,
follow/list), `chat` (multi-turn chat), `compare` (zero-/few-shot vs head/LoRA/full), `stage` (reproduce).
"""
