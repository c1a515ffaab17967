"""REINFORCE (Williams 1992), our own and short: Monte-Carlo policy gradient, with and without a baseline.

The policy pi_theta(a|s) is a small network from the state to one logit per action. After a batch of N whole
episodes played with it, the gradient of the expected return J(theta) is estimated as

    grad J(theta) ~ 1/N  sum_episodes  sum_t  grad log pi_theta(a_t|s_t) * (G_t - b(s_t))

with G_t = r_t + gamma r_{t+1} + gamma^2 r_{t+2} + ... the return from step t on (Monte Carlo: the rest of the
episode as it really happened). Without a baseline b = 0. With a baseline b(s) = V_phi(s), a critic trained by
mean squared error on the same returns, the weight of each step is the advantage A_t = G_t - V(s_t): "how much
better than usual was what happened after this action". Subtracting b(s) leaves the expected gradient unchanged
(E[grad log pi(a|s)] = 0 for any b that does not depend on the action) and lowers its variance: that is the
source material's A2C step 3, A(s_t, a_t) = R_t - V(s_t), and `gradient_variance` measures it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import Callable

import numpy as np

from hfrepro.errors import UserError

ENV_ID = "CartPole-v1"


@dataclass
class ReinforceSettings:
    steps: int                 # environment steps to train for (whole batches: it may run a little over)
    baseline: bool             # learn a critic V(s) and use G_t - V(s_t)
    episodes_per_update: int   # N, episodes per gradient estimate
    learning_rate: float       # Adam, for the policy and the critic
    gamma: float               # discount
    hidden: int                # units of the one hidden layer of each network


def check_settings(hyper: dict, where: str = "") -> None:
    """The `reinforce:` settings of a budget: exactly ReinforceSettings' fields besides steps and baseline."""
    want = {f.name for f in fields(ReinforceSettings)} - {"steps", "baseline"}
    if set(hyper) != want:
        missing, unknown = sorted(want - set(hyper)), sorted(set(hyper) - want)
        raise UserError(f"reinforce settings: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}",
                        where=where or None, fix=f"give exactly: {', '.join(sorted(want))}")
    if any(not isinstance(hyper[k], (int, float)) or hyper[k] <= 0 for k in want):
        raise UserError(f"reinforce settings must be positive numbers: {hyper}", where=where or None,
                        fix="e.g. {episodes_per_update: 8, learning_rate: 0.01, gamma: 0.99, hidden: 64}")


def mlp(n_in: int, n_out: int, hidden: int):
    from torch import nn

    return nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, n_out))


@dataclass
class Episode:
    states: np.ndarray        # (T, 4): s_0 .. s_{T-1}
    actions: np.ndarray       # (T,)
    rewards: np.ndarray       # (T,)
    last_state: np.ndarray    # s_T, where it ended
    terminated: bool          # the pole fell (True) or time ran out (False: the future was cut, not zero)


def play(policy, envs: list, generator) -> list[Episode]:
    """One episode in each environment, all played side by side (one forward pass for all the live ones),
    actions sampled from pi(a|s)."""
    import torch

    states = np.stack([env.reset()[0] for env in envs])
    trace: list[list[tuple]] = [[] for _ in envs]
    alive = np.ones(len(envs), dtype=bool)
    ended = [False] * len(envs)
    while alive.any():
        idx = np.flatnonzero(alive)
        with torch.no_grad():
            probs = torch.softmax(policy(torch.as_tensor(states[idx], dtype=torch.float32)), dim=-1)
            actions = torch.multinomial(probs, 1, generator=generator).squeeze(1).numpy()
        for j, i in enumerate(idx):
            nxt, reward, terminated, truncated, _ = envs[i].step(int(actions[j]))
            trace[i].append((states[i].copy(), int(actions[j]), float(reward)))
            states[i], ended[i] = nxt, terminated
            alive[i] = not (terminated or truncated)
    return [Episode(np.array([t[0] for t in tr], dtype=np.float32), np.array([t[1] for t in tr]),
                    np.array([t[2] for t in tr], dtype=np.float32), states[i].copy(), ended[i])
            for i, tr in enumerate(trace)]


def returns_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = r_t + gamma G_{t+1}, computed backwards from the end of the episode."""
    out = np.zeros(len(rewards), dtype=np.float32)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def train(s: ReinforceSettings, seed: int, evaluate: Callable | None = None, eval_every: int = 0,
          snapshots: int = 0) -> dict:
    """Train a policy (and, with a baseline, its critic) for `s.steps` environment steps.

    evaluate(act) -> mean return is called before training and every `eval_every` steps (the learning curve);
    `snapshots` copies of (policy, critic) are kept at equal spacings of training, for `gradient_variance`."""
    import gymnasium as gym
    import torch

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    envs = [gym.make(ENV_ID) for _ in range(s.episodes_per_update)]
    for k, env in enumerate(envs):
        env.reset(seed=seed * 1000 + k)  # later resets continue each environment's random stream
    n_obs, n_act = envs[0].observation_space.shape[0], envs[0].action_space.n
    policy, critic = mlp(n_obs, n_act, s.hidden), mlp(n_obs, 1, s.hidden)
    opt = torch.optim.Adam(policy.parameters(), lr=s.learning_rate)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=s.learning_rate)
    act = greedy_actor(policy)
    steps, curve, train_returns, kept = 0, [], [], []
    next_eval = 0
    next_snap = [s.steps * (k + 1) // snapshots for k in range(snapshots)] if snapshots else []
    while steps < s.steps:
        if evaluate and steps >= next_eval:
            curve.append([steps, *evaluate(act)])
            next_eval += eval_every
        episodes = play(policy, envs, generator)
        steps += sum(len(e.rewards) for e in episodes)
        train_returns.append([steps, float(np.mean([e.rewards.sum() for e in episodes]))])
        update(policy, critic if s.baseline else None, opt, critic_opt, episodes, s.gamma)
        while next_snap and steps >= next_snap[0]:
            next_snap.pop(0)
            kept.append({"steps": steps, "policy": copy.deepcopy(policy), "critic": copy.deepcopy(critic)})
    if evaluate:
        curve.append([steps, *evaluate(act)])
    return {"policy": policy, "critic": critic if s.baseline else None, "curve": curve,
            "train_returns": train_returns, "snapshots": kept, "steps": steps}


def update(policy, critic, opt, critic_opt, episodes: list[Episode], gamma: float) -> None:
    """One REINFORCE step on a batch of episodes; with a critic, one mean-squared-error step for it too."""
    import torch

    states = torch.as_tensor(np.concatenate([e.states for e in episodes]))
    actions = torch.as_tensor(np.concatenate([e.actions for e in episodes]))
    returns = torch.as_tensor(np.concatenate([returns_to_go(e.rewards, gamma) for e in episodes]))
    log_prob = torch.distributions.Categorical(logits=policy(states)).log_prob(actions)
    if critic is not None:
        values = critic(states).squeeze(-1)
        critic_loss = ((values - returns) ** 2).mean()          # the critic: MSE to the real returns
        critic_opt.zero_grad()
        critic_loss.backward()
        critic_opt.step()
        weight = returns - values.detach()                       # the advantage A_t = G_t - V(s_t)
    else:
        weight = returns                                         # plain REINFORCE: G_t
    loss = -(log_prob * weight).sum() / len(episodes)            # minus the estimate of J(theta)
    opt.zero_grad()
    loss.backward()
    opt.step()


def greedy_actor(policy) -> Callable[[np.ndarray], np.ndarray]:
    """For evaluation: the most probable action in each state."""
    import torch

    def act(states: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return policy(torch.as_tensor(states, dtype=torch.float32)).argmax(-1).numpy()
    return act


ESTIMATORS = ("reinforce", "baseline", "td")
VARIANCE_SEED_BASE = 500_000  # the episodes of the variance measurement: starts no training episode uses


def variance_seed(seed: int, snapshot: int) -> int:
    return VARIANCE_SEED_BASE + 10_000 * seed + 1000 * snapshot


def gradient_variance(policy, critic, episodes: int, seed: int, gamma: float) -> dict:
    """The variance of the one-episode policy-gradient estimate g = sum_t grad log pi(a_t|s_t) * psi_t at fixed
    (policy, critic), for three choices of the weight psi_t, all on the same `episodes` sampled episodes:

        reinforce   psi_t = G_t                               (Monte Carlo return: unbiased, high variance)
        baseline    psi_t = G_t - V(s_t)                      (the same expected gradient, lower variance)
        td          psi_t = r_t + gamma V(s_{t+1}) - V(s_t)   (actor-critic's one-step advantage: biased
                                                                  where V is wrong, far lower variance)

    Variance = the trace of the covariance over episodes (the sum of every parameter's variance)."""
    import gymnasium as gym
    import torch

    envs = [gym.make(ENV_ID) for _ in range(episodes)]
    for k, env in enumerate(envs):
        env.reset(seed=seed + k)
    sampled = play(policy, envs, torch.Generator().manual_seed(seed))
    grads: dict[str, list[np.ndarray]] = {k: [] for k in ESTIMATORS}
    for e in sampled:
        states = torch.as_tensor(e.states)
        with torch.no_grad():
            v = critic(states).squeeze(-1)
            v_last = 0.0 if e.terminated else float(critic(torch.as_tensor(e.last_state)[None]).squeeze())
            v_next = torch.cat([v[1:], torch.tensor([v_last])])
        g = torch.as_tensor(returns_to_go(e.rewards, gamma))
        weights = {"reinforce": g, "baseline": g - v, "td": torch.as_tensor(e.rewards) + gamma * v_next - v}
        for name, w in weights.items():
            policy.zero_grad()
            log_prob = torch.distributions.Categorical(logits=policy(states)).log_prob(torch.as_tensor(e.actions))
            (log_prob * w).sum().backward()
            grads[name].append(torch.cat([p.grad.flatten() for p in policy.parameters()]).numpy().copy())
    out = {name: float(np.var(np.stack(gs), axis=0, ddof=1).sum()) for name, gs in grads.items()}
    out["episode_length"] = float(np.mean([len(e.rewards) for e in sampled]))
    return out
