"""The SFT step of the pipeline: demonstrations (prompt -> preferred answer) with TRL's SFTTrainer + LoRA.

One function, `run_sft`, so the pipeline does not care who implements SFT: it uses the fine-tuning stage's
`hfrepro.finetune.sft.train_sft` when that exists in this checkout, else the thinnest call to TRL's
`SFTTrainer` below. Either way the result is a merged, complete model folder (the RL reference policy).
"""

from __future__ import annotations

import time


def sft_rows(rows: list[dict]) -> list[dict]:
    """Prompt-completion rows (TRL format) from preference prompts: the preferred answer is the demonstration."""
    out = []
    for r in rows:
        chosen = r["chosen"]
        out.append({"prompt": r["prompt"], "completion": chosen if isinstance(chosen, list) else chosen})
    return out


def run_sft(*, run, tok, model_name: str, rows: list[dict], max_steps: int, batch_size: int, learning_rate: float,
            lora_r: int, lora_alpha: int, seed: int, logging_steps: int = 1, save_steps: int = 0) -> dict:
    """Train on the demonstrations, save the merged model to run.model_dir (main process). Returns metrics."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from hfrepro.rlhf.models import load_policy, save_complete
    from hfrepro.rlhf.ppo import lora_config
    from hfrepro.training import callbacks, make_training_args

    ds = Dataset.from_list(sft_rows(rows))
    args = make_training_args(
        cls=SFTConfig, output_dir=str(run.checkpoints), max_steps=max_steps, per_device_train_batch_size=batch_size,
        learning_rate=learning_rate, logging_steps=logging_steps, seed=seed, lr_scheduler_type="linear",
        warmup_steps=0, save_steps=save_steps or max_steps, save_strategy="steps" if save_steps else "no",
        disable_tqdm=True, max_length=128, completion_only_loss=True)
    model = load_policy(model_name, tok)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                         peft_config=lora_config(lora_r, lora_alpha) if lora_r else None, callbacks=callbacks(run))
    t0 = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=run.last_checkpoint())
    seconds = time.perf_counter() - t0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    acc = trainer.accelerator
    acc.wait_for_everyone()
    metrics = {}
    if acc.is_main_process:
        save_complete(acc.unwrap_model(trainer.model), tok, run.model_dir)
        metrics = {"sft_steps": trainer.state.global_step, "sft_first_loss": losses[0] if losses else None,
                   "sft_final_loss": losses[-1] if losses else None, "sft_train_loss": out.training_loss,
                   "sft_seconds": round(seconds, 2), "sft_examples": len(ds)}
    acc.wait_for_everyone()
    return metrics
