"""The SFT step of the pipeline, done by the fine-tuning stage's `hfrepro.finetune.sft.train_sft` (TRL's
SFTTrainer, LoRA, completion-only loss, resume, model card): demonstrations are the preference prompts with
their preferred answer. The LoRA adapter is merged, so `run_dir/model` is a complete model folder: the policy
RL starts from and the frozen reference of the KL penalty.
"""

from __future__ import annotations


def sft_rows(rows: list[dict]) -> list[dict]:
    """TRL prompt-completion rows from preference prompts: the preferred answer is the demonstration."""
    return [{"prompt": r["prompt"], "completion": r["chosen"]} for r in rows]


def run_sft(*, run_dir, tok, model_name: str, rows: list[dict], config: dict, max_steps: int, batch_size: int,
            learning_rate: float, lora_r: int, lora_alpha: int, seed: int, lora_layers: int = 0,
            overwrite: bool = False,
            save_steps: int = 0, echo: bool = True) -> dict:
    """Train (or resume, or reuse a finished run in `run_dir`); returns metrics prefixed `sft_`."""
    from hfrepro.finetune.sft import LoraSettings, train_sft
    from hfrepro.rlhf.ppo import lora_targets

    lora = LoraSettings(r=lora_r, alpha=lora_alpha, dropout=0.0, target_modules=lora_targets(model_name, lora_layers))
    m = train_sft(model_name, sft_rows(rows), method="lora" if lora_r else "full", run_dir=run_dir, tokenizer=tok,
                  lora=lora, merge=True, config=config, overwrite=overwrite, echo=echo,
                  card=dict(title="SFT policy (hfrepro RLHF stage)",
                            description="Supervised fine-tuning on one-word-answer demonstrations (prompt -> "
                                        "preferred answer); the reference policy of the RL step."),
                  max_steps=max_steps, per_device_train_batch_size=batch_size, learning_rate=learning_rate,
                  seed=seed, logging_steps=1, lr_scheduler_type="linear", warmup_steps=0, max_length=128,
                  save_strategy="steps" if save_steps else "no", save_steps=save_steps or max_steps)
    tok.padding_side = "left"  # train_sft pads on the right for training; generation pads on the left
    return {"sft_steps": m.get("steps"), "sft_examples": m.get("examples"), "sft_train_loss": m.get("train_loss"),
            "sft_first_loss": m.get("first_loss"), "sft_final_loss": m.get("last_loss"),
            "sft_seconds": m.get("train_seconds"), "sft_trainable_params": m.get("trainable_params")}
