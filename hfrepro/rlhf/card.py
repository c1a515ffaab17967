"""The model cards of the RLHF steps: the SFT policy, the reward model, the RL policies (the ladder, GRPO, DPO)."""

from __future__ import annotations

from pathlib import Path

from hfrepro.cards import hub_base_model, write_model_card

_POLICY = "The SFT policy trained with {name} "
CARDS = {
    "sft": dict(title="SFT policy (hfrepro RLHF)", pipeline_tag="text-generation", tags=["sft", "lora", "trl"],
                description="Supervised fine-tuning with TRL's SFTTrainer and LoRA (merged into the weights) on "
                            "one-word-answer demonstrations (prompt -> preferred answer): the policy RL starts "
                            "from and the frozen reference of its KL penalty."),
    "reward": dict(title="Reward model (hfrepro RLHF)", pipeline_tag="text-classification",
                   tags=["reward-model", "trl"],
                   description="Bradley-Terry reward model trained with TRL's RewardTrainer on preference pairs; the "
                               "score is read at the EOS token.",
                   eval_metrics=["rm_test_accuracy", "rm_test_margin"], eval_split="test"),
    "reinforce": dict(title="REINFORCE policy (hfrepro RLHF)", pipeline_tag="text-generation",
                      tags=["reinforce", "rlhf"],
                      description=_POLICY.format(name="REINFORCE (hfrepro's trainer, no baseline)") + "against the "
                                  "reward model, with a KL penalty to the SFT policy: the ladder's first rung."),
    "rloo": dict(title="RLOO policy (hfrepro RLHF)", pipeline_tag="text-generation", tags=["rloo", "rlhf"],
                 description=_POLICY.format(name="REINFORCE with a leave-one-out baseline (hfrepro's trainer)")
                             + "against the reward model, with a KL penalty to the SFT policy."),
    "a2c": dict(title="A2C policy (hfrepro RLHF)", pipeline_tag="text-generation", tags=["a2c", "actor-critic", "rlhf"],
                description=_POLICY.format(name="advantage actor-critic (hfrepro's trainer, one-step advantage)")
                            + "against the reward model, with a KL penalty to the SFT policy."),
    "ppo": dict(title="PPO policy (hfrepro RLHF)", pipeline_tag="text-generation", tags=["ppo", "rlhf"],
                description=_POLICY.format(name="PPO (hfrepro's PPOTrainer: GAE, clipped surrogate and value "
                                                "losses)") + "against the reward model, with a KL penalty to the "
                            "SFT policy."),
    "grpo": dict(title="GRPO policy (hfrepro RLHF)", pipeline_tag="text-generation", tags=["grpo", "rlhf", "trl"],
                 description=_POLICY.format(name="GRPO (TRL's GRPOTrainer)") + "against the reward model, with a "
                             "KL penalty to the SFT policy."),
    "dpo": dict(title="DPO policy (hfrepro RLHF)", pipeline_tag="text-generation", tags=["dpo", "rlhf", "trl"],
                description=_POLICY.format(name="DPO (TRL's DPOTrainer)") + "on the preference pairs (offline)."),
}


# A policy's held-out evaluation (hfrepro.rlhf.evaluate, eval.json): what its model-index reports.
EVALUATION = ("reward", "reward_gain", "kl", "exact_match", "echo_rate", "win_rate")


def write_card(folder: str | Path, step: str, metrics: dict, config: dict, base_model: str, command: str,
               evaluation: dict | None = None) -> Path:
    """README.md of a step's run folder (`step`: sft, reward, or an algorithm); `command` trained it. A policy's
    card gets its model-index from `evaluation` (its numbers on the held-out prompts), once it has been
    evaluated; until then the card holds the training numbers only."""
    card = dict(CARDS[step])
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if evaluation is not None:
        held_out = {k: evaluation[k] for k in EVALUATION if isinstance(evaluation.get(k), (int, float))}
        numbers.update(held_out)
        card.update(eval_metrics=list(held_out), eval_split="test")
    card.setdefault("eval_metrics", [])
    return write_model_card(
        folder, license="apache-2.0", base_model=hub_base_model(base_model), datasets=["qw-prefs"], language=["en"],
        metrics=numbers, config=config, command=command,
        usage="Teaching: one step of the InstructGPT pipeline on a one-word-answer task (data_cards/qw-prefs.md).",
        limits="A small model trained for minutes on one narrow task; its answers are often wrong. The numbers "
               "are on the task's held-out prompts only.", **card)
