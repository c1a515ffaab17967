"""Stage 6: RLHF, the InstructGPT pipeline - SFT -> reward model -> PPO (or RLOO, GRPO, DPO) - on TRL.

    prefs.py     preference pairs from questions-words (or the user's TRL-format file); exact-match metric
    models.py    tokenizer/model set-up with the pitfalls handled (pad != EOS, reward at EOS, frozen copies)
    sft.py       the SFT step (stage 5's train_sft, LoRA merged)
    reward.py    RewardTrainer + held-out pairwise accuracy      (recipes/reward.py)
    ppo.py       PPOTrainer with logs, samples, checkpoints/resume (recipes/ppo.py)
    online.py    RLOO / GRPO against the same reward model, DPO offline
    evaluate.py  held-out evaluation: reward, KL, win-rate, exact match, reward-hacking signs
    pipeline.py  the whole run and the comparison table          (recipes/rlhf.py)
    stage.py     `hfrepro reproduce` stage 6
    cli.py       `hfrepro prefs`
"""
