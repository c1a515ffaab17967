"""The alternatives to PPO in step 3, each with TRL's own trainer (recipes/rlhf.py, `--algo`):

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

from hfrepro.errors import UserError
from hfrepro.rlhf.models import score
from hfrepro.rlhf.prefs import encode_completion, encode_prompt

ALGOS = ("ppo", "rloo", "grpo", "dpo")


def parse_algos(algo: str) -> list[str]:
    """`ppo`, `all` or a comma list -> the algorithms, in that order."""
    names = list(ALGOS) if algo == "all" else [a.strip() for a in algo.split(",") if a.strip()]
    bad = [a for a in names if a not in ALGOS]
    if bad or not names:
        raise UserError(f"unknown --algo {algo!r}", fix=f"use one of {', '.join(ALGOS)}, all, or a comma list")
    return names


def reward_function(rm, tok, missing_eos_penalty: float):
    """A TRL reward function (prompts, completions, completion_ids -> floats) backed by the reward model."""

    def reward_model(prompts, completions, completion_ids=None, **kw):
        seqs, ended = [], []
        for p, c, ids in zip(prompts, completions, completion_ids or [None] * len(prompts)):
            ids = list(encode_completion(tok, c) if ids is None else ids)
            if tok.eos_token_id in ids:
                ids = ids[:ids.index(tok.eos_token_id) + 1]
            ids = [t for t in ids if t != tok.pad_token_id]
            ended.append(bool(ids) and ids[-1] == tok.eos_token_id)
            seqs.append(encode_prompt(tok, p) + ids)
        s = score(rm, seqs, tok.pad_token_id)
        return [v - (0.0 if e else missing_eos_penalty) for v, e in zip(s, ended)]

    return reward_model
