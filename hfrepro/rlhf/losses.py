"""The equations of policy-gradient RL for language models, one small function each (hfrepro/rlhf/ppo.py runs
them). Notation: a prompt is the state s_0; each response token y_t is an action a_t taken in state
s_t = (prompt, y_<t); the episode ends at EOS (or at the length limit). Tensors are (batch, response tokens);
`mask` is True on the tokens of the response (up to and including EOS), False on the padding after it.

Rewards (InstructGPT's, per token):      r_t = -beta * KL_t                        for t < T
                                         r_T = -beta * KL_T + score(prompt, y)     at the last token
    KL_t = log pi(y_t|s_t) - log pi_ref(y_t|s_t)     ("k1"; "k3" = (ratio - 1) - log ratio, never negative)

Returns and advantages (one function, four rungs of the ladder):
    G_t = sum_{t'>=t} gamma^(t'-t) r_t'                                   the Monte-Carlo return
    delta_t = r_t + gamma V(s_{t+1}) - V(s_t)                            the one-step TD error
    A_t = sum_{l>=0} (gamma lambda)^l delta_{t+l}                        GAE(lambda) (Schulman et al. 2016)
        lambda = 1, V = 0                  -> A_t = G_t                     REINFORCE (no baseline)
        lambda = 1, V = b (a constant)     -> A_t = G_t - b                 REINFORCE with a baseline (RLOO: b =
                                                                            the mean return of the other answers
                                                                            to the same prompt)
        lambda = 0, V = the critic         -> A_t = r_t + gamma V(s_{t+1}) - V(s_t)   A2C's one-step advantage
        lambda = 0.95, V = the critic      -> PPO's GAE
    the critic's target ("returns"): A_t + V(s_t)

Losses:
    policy gradient:   L_pg = -E[A_t * ratio_t],     ratio_t = pi(y_t|s_t) / pi_old(y_t|s_t)
        (at ratio = 1 its gradient is REINFORCE's -E[A_t grad log pi(y_t|s_t)])
    PPO's clipped surrogate (Schulman et al. 2017), TRPO's trust region made cheap:
                       L_clip = E[max(-A_t ratio_t, -A_t clip(ratio_t, 1 - eps, 1 + eps))]
    the critic:        L_V = 1/2 E[max((V - G)^2, (clip(V, V_old - eps_v, V_old + eps_v) - G)^2)]
"""

from __future__ import annotations

import math

import torch

INVALID_LOGPROB = 1.0  # written where there is no token (after EOS): both log-probs equal, so KL there is 0


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    if dim is None:
        return (x * mask).sum() / mask.sum()
    return (x * mask).sum(dim) / mask.sum(dim)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance over the masked entries (Bessel-corrected unless `unbiased` is False)."""
    centred = x - masked_mean(x, mask)
    var = masked_mean(centred ** 2, mask)
    if unbiased:
        n = mask.sum()
        if n < 2:
            raise ValueError("whitening needs at least 2 tokens: use larger minibatches")
        var = var * n / (n - 1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the masked entries ("advantage whitening"); padding is left at 0 by the caller."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return out if shift_mean else out + mean


def first_true_indices(bools: torch.Tensor) -> torch.Tensor:
    """Index of the first True in each row; the row length where there is none."""
    n = bools.size(-1)
    idx = torch.arange(n, device=bools.device)
    return torch.min(torch.where(bools, idx, n), dim=-1).values


def response_mask(responses: torch.Tensor, pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask, last): True on the response's tokens up to its end, and the index of its last token (EOS, or
    the last position when it never ended). Generation writes the pad token after EOS."""
    last = first_true_indices(responses == pad_token_id) - 1
    idx = torch.arange(responses.shape[1], device=responses.device)
    return idx.unsqueeze(0) <= last.unsqueeze(1), last


def truncate_after(responses: torch.Tensor, stop_token_id: int, pad_token_id: int) -> torch.Tensor:
    """Everything after the first `stop_token_id` (EOS) becomes padding."""
    stop = first_true_indices(responses == stop_token_id).unsqueeze(-1)
    idx = torch.arange(responses.shape[1], device=responses.device).unsqueeze(0)
    return torch.masked_fill(responses, idx > stop, pad_token_id)


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """KL_t between the policy and the reference on the sampled token (http://joschu.net/blog/kl-approx.html):
    k1 = log pi - log pi_ref (unbiased, can be negative); k3 = (pi_ref/pi - 1) - log(pi_ref/pi) (>= 0)."""
    log_ratio = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_ratio
    if estimator == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}: use k1 or k3")


def token_rewards(kl: torch.Tensor, scores: torch.Tensor, end: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """r_t = -beta KL_t, plus the reward model's score on token `end` (the last token of each response)."""
    rewards = -kl_coef * kl
    rewards[torch.arange(len(scores), device=scores.device), end] += scores
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) by generalised advantage estimation, backwards in time:
    delta_t = r_t + gamma V_{t+1} - V_t;  A_t = delta_t + gamma lambda A_{t+1};  returns = A + V.
    Beyond the last column V and A are 0; padded positions must carry r = V = 0."""
    last, out = 0.0, []
    n = rewards.shape[1]
    for t in reversed(range(n)):
        next_value = values[:, t + 1] if t < n - 1 else 0.0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        out.append(last)
    advantages = torch.stack(out[::-1], dim=1)
    return advantages, advantages + values


def leave_one_out_baseline(returns: torch.Tensor, group: int) -> torch.Tensor:
    """For answers sampled `group` at a time per prompt (rows [i*group, (i+1)*group) share a prompt): each
    answer's baseline is the mean return of the *other* answers to its prompt (RLOO; Kool et al. 2019)."""
    if group < 2:
        raise ValueError("a leave-one-out baseline needs at least 2 answers per prompt")
    r = returns.view(-1, group)
    return ((r.sum(1, keepdim=True) - r) / (group - 1)).reshape(-1)


def policy_loss(new_logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, cliprange: float | None) -> tuple[torch.Tensor, dict]:
    """-E[A ratio] (the policy gradient), clipped PPO-style when `cliprange` is set. Also the clip fraction,
    the approximate KL between the new and old policy and the mean ratio, for the logs."""
    log_ratio = new_logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    losses = -advantages * ratio
    if cliprange is not None and math.isfinite(cliprange):
        clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
        clipfrac = masked_mean((clipped > losses).float(), mask)
        losses = torch.max(losses, clipped)
    else:
        clipfrac = torch.zeros(())
    loss = masked_mean(losses, mask)
    with torch.no_grad():
        stats = {"clipfrac": clipfrac, "approxkl": 0.5 * masked_mean(log_ratio ** 2, mask),
                 "ratio": masked_mean(ratio, mask)}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange_value: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """1/2 E[(V - G)^2], with PPO's clipped variant when `cliprange_value` is set; (loss, clip fraction)."""
    losses = (values - returns) ** 2
    if cliprange_value is None or not math.isfinite(cliprange_value):
        return 0.5 * masked_mean(losses, mask), torch.zeros(())
    clipped = torch.clamp(values, old_values - cliprange_value, old_values + cliprange_value)
    clipped_losses = (clipped - returns) ** 2
    clipfrac = masked_mean((clipped_losses > losses).float(), mask)
    return 0.5 * masked_mean(torch.max(losses, clipped_losses), mask), clipfrac


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the next-token distribution at each position."""
    p = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (p * logits).sum(-1)


def selective_log_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[index], row by row (memory-light: never the whole log-softmax of a batch)."""
    return torch.stack([torch.log_softmax(row, -1).gather(-1, i.unsqueeze(-1)).squeeze(-1)
                        for row, i in zip(logits, index)])
