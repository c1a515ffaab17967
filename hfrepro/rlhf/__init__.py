"""Stage 9: RLHF, InstructGPT's three steps - SFT -> reward model -> PPO (or RLOO, GRPO, DPO) - on TRL.

The steps are the recipes (recipes/rlhf.py, and the standalone recipes/reward.py, recipes/ppo.py); this
package holds what they share, in import order:

    prefs.py     preference pairs from questions-words (or the user's TRL-format file); exact-match metric
    models.py    tokenizer/model set-up with the pitfalls handled (pad != EOS, reward at EOS, frozen copies)
    evaluate.py  held-out evaluation: reward, KL, win-rate, exact match, reward-hacking signs
    reward.py    held-out pairwise accuracy of a reward model
    ppo.py       PPOSession: logs, samples, checkpoints/resume around TRL's PPOTrainer
    online.py    the --algo names; the reward function RLOO / GRPO score with
    compare.py   the comparison table, curves and summary of a run folder
    card.py      the model cards of the steps
    cli.py       `hfrepro prefs`
"""
