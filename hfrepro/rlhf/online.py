"""The algorithms of step 3 (recipes/rlhf.py, `--algo`), and the reward function TRL's online trainers use.

The ladder, hfrepro's trainer (hfrepro/rlhf/ppo.py: four settings of one loop, on the same rollouts budget):
- **reinforce**: REINFORCE, the Monte-Carlo policy gradient with no baseline;
- **rloo**: REINFORCE with a baseline, the mean return of the other answers to the same prompt (RLOO);
- **a2c**: actor-critic, the one-step advantage r_t + gamma V(s_{t+1}) - V(s_t) from a learned critic;
- **ppo**: PPO, GAE advantages, the clipped surrogate, several epochs per batch.
Beside it, TRL's maintained trainers:
- **grpo** (`GRPOTrainer`): group-normalised advantages, PPO-style clipped ratio, no value model; KL in the loss;
- **dpo** (`DPOTrainer`): offline, on the preference pairs themselves; no reward model, no sampling.

GRPO scores completions with the *same* reward model as the ladder, through `reward_function`: it tokenises
`prompt + completion` exactly as the reward model was trained (reading the score at EOS) and subtracts the same
missing-EOS penalty. (Passing the model object instead would re-apply the chat template, which appends a
newline after EOS, and the score would be read at that newline.)
"""

from __future__ import annotations

from hfrepro.errors import UserError
from hfrepro.rlhf.models import score
from hfrepro.rlhf.prefs import encode_completion, encode_prompt

LADDER = ("reinforce", "rloo", "a2c", "ppo")
TRL_ALGOS = ("grpo", "dpo")
ALGOS = LADDER + TRL_ALGOS


def parse_algos(algo: str) -> list[str]:
    """`ppo`, `ladder` (reinforce, rloo, a2c, ppo), `all` or a comma list -> the algorithms, in that order."""
    groups = {"all": list(ALGOS), "ladder": list(LADDER)}
    names = [n for a in algo.split(",") if a.strip() for n in groups.get(a.strip(), [a.strip()])]
    bad = [a for a in names if a not in ALGOS]
    if bad or not names:
        raise UserError(f"unknown --algo {algo!r}",
                        fix=f"use one of {', '.join(ALGOS)}, ladder, all, or a comma list")
    return list(dict.fromkeys(names))


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
