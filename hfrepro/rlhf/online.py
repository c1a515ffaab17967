"""The alternatives to PPO in the same pipeline, each with TRL's own trainer:

- **RLOO** (`RLOOTrainer`): REINFORCE with a leave-one-out baseline over `num_generations` samples per prompt;
  no value model; KL to the reference in the reward (`beta`).
- **GRPO** (`GRPOTrainer`): group-normalised advantages, PPO-style clipped ratio, no value model; KL in the loss.
- **DPO** (`DPOTrainer`): offline, on the preference pairs themselves; no reward model, no sampling.

RLOO and GRPO score completions with the *same* reward model as PPO, through `reward_function`: it tokenises
`prompt + completion` exactly as the reward model was trained (reading the score at EOS) and subtracts the same
missing-EOS penalty as PPO. (Passing the model object instead would re-apply the chat template, which appends a
newline after EOS, and the score would be read at that newline.)
"""

from __future__ import annotations

import time

ALGOS = ("ppo", "rloo", "grpo", "dpo")


def reward_function(rm, tok, missing_eos_penalty: float):
    """A TRL reward function (prompts, completions, completion_ids -> floats) backed by the reward model."""
    from hfrepro.rlhf.models import score
    from hfrepro.rlhf.prefs import encode_prompt

    def reward_model(prompts, completions, completion_ids=None, **kw):
        seqs, ended = [], []
        for p, c, ids in zip(prompts, completions, completion_ids or [None] * len(prompts)):
            if ids is None:
                from hfrepro.rlhf.prefs import encode_completion
                ids = encode_completion(tok, c)
            ids = list(ids)
            if tok.eos_token_id in ids:
                ids = ids[:ids.index(tok.eos_token_id) + 1]
            ids = [t for t in ids if t != tok.pad_token_id]
            ended.append(bool(ids) and ids[-1] == tok.eos_token_id)
            seqs.append(encode_prompt(tok, p) + ids)
        s = score(rm, seqs, tok.pad_token_id)
        return [v - (0.0 if e else missing_eos_penalty) for v, e in zip(s, ended)]

    return reward_model


def train_online(algo: str, *, run, tok, policy_path: str, reward_path: str | None, train_rows: list[dict],
                 pair_rows=None, steps: int, batch_size: int, learning_rate: float, kl_coef: float,
                 temperature: float, max_new_tokens: int, missing_eos_penalty: float, lora_r: int, lora_alpha: int,
                 seed: int, lora_layers: int = 0, num_generations: int = 2, dpo_beta: float = 0.1, save_steps: int = 0) -> dict:
    """Train the policy with RLOO, GRPO or DPO; save the merged policy to run.model_dir (main process)."""
    from datasets import Dataset

    from hfrepro.rlhf.models import load_frozen, load_policy, save_complete
    from hfrepro.rlhf.ppo import lora_config, lora_targets
    from hfrepro.training import callbacks, make_training_args

    policy = load_policy(policy_path, tok)
    peft_cfg = lora_config(lora_r, lora_alpha, target=lora_targets(policy_path, lora_layers)) if lora_r else None
    common = dict(output_dir=str(run.checkpoints), max_steps=steps, learning_rate=learning_rate, logging_steps=1,
                  seed=seed, save_steps=save_steps or steps, save_strategy="steps" if save_steps else "no",
                  disable_tqdm=True, lr_scheduler_type="linear", warmup_steps=0)
    if algo in ("rloo", "grpo"):
        from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer
        cfg_cls, trainer_cls = (RLOOConfig, RLOOTrainer) if algo == "rloo" else (GRPOConfig, GRPOTrainer)
        rm = load_frozen(reward_path, tok, kind="scorer")
        args = make_training_args(cls=cfg_cls, per_device_train_batch_size=batch_size,
                                  num_generations=num_generations, max_completion_length=max_new_tokens,
                                  temperature=temperature, top_p=1.0, beta=kl_coef, **common)
        ds = Dataset.from_list([{"prompt": r["prompt"]} for r in train_rows])
        trainer = trainer_cls(model=policy, reward_funcs=reward_function(rm, tok, missing_eos_penalty), args=args,
                              train_dataset=ds, processing_class=tok, peft_config=peft_cfg,
                              callbacks=callbacks(run))
    elif algo == "dpo":
        from trl import DPOConfig, DPOTrainer
        ref = load_frozen(policy_path, tok)  # a separate frozen object, not rebuilt from _name_or_path
        args = make_training_args(cls=DPOConfig, per_device_train_batch_size=batch_size, beta=dpo_beta,
                                  max_length=128, **common)
        ds = pair_rows.select_columns(["prompt", "chosen", "rejected"])
        trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=ds, processing_class=tok,
                             peft_config=peft_cfg, callbacks=callbacks(run))
    else:
        raise ValueError(algo)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=run.last_checkpoint())
    seconds = time.perf_counter() - t0
    acc = trainer.accelerator
    acc.wait_for_everyone()
    out: dict = {}
    if acc.is_main_process:
        save_complete(acc.unwrap_model(trainer.model), tok, run.model_dir)
        out = {"updates": trainer.state.global_step, "train_seconds": round(seconds, 2),
               "seconds_per_update": round(seconds / max(1, trainer.state.global_step), 3),
               "world_size": acc.num_processes}
    acc.wait_for_everyone()
    return out
