"""Greedy evaluation on CartPole, the same for every agent: our REINFORCE and stable-baselines3's A2C, PPO, DQN.

CartPole-v1: a pole hinged on a cart; push the cart left or right to keep the pole up.

    state   4 numbers: cart position, cart velocity, pole angle, pole angular velocity
    action  0 push left, 1 push right
    reward  +1 for every step the pole stays up; the episode ends when it falls (|angle| > 12 degrees), the cart
            leaves the track, or after 500 steps (return 500: the best possible)

gymnasium calls CartPole-v1 solved at a mean return of 475 (`gym.spec("CartPole-v1").reward_threshold`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

ENV_ID = "CartPole-v1"
EVAL_SEED_BASE = 1_000_000  # evaluation episodes start from seeds no training episode uses


def solved_at(env_id: str = ENV_ID) -> float:
    import gymnasium as gym

    return float(gym.spec(env_id).reward_threshold)


def evaluate(act: Callable[[np.ndarray], np.ndarray], episodes: int, seed: int, env_id: str = ENV_ID) -> list[float]:
    """Returns of `episodes` episodes played side by side with the actions `act(states) -> actions` (a batch of
    states in, one action each out). Episode i starts from reset(seed=seed + i): CartPole is deterministic after
    its start, so every agent is judged on exactly the same starts."""
    import gymnasium as gym

    envs = [gym.make(env_id) for _ in range(episodes)]
    states = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    returns = np.zeros(episodes)
    alive = np.ones(episodes, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        actions = np.asarray(act(states[idx])).reshape(-1)
        for j, i in enumerate(idx):
            states[i], reward, terminated, truncated, _ = envs[i].step(int(actions[j]))
            returns[i] += reward
            alive[i] = not (terminated or truncated)
    for env in envs:
        env.close()
    return returns.tolist()


def eval_seed(seed: int) -> int:
    """The first start of the evaluation episodes of a run with `--seed seed`: every algorithm, training seed and
    evaluation point of that run is judged on the same starts, which no training episode uses."""
    return EVAL_SEED_BASE + 10_000 * seed


def steps_to_reach(curve: Sequence[Sequence[float]], threshold: float) -> int | None:
    """The environment steps at the first evaluation after training began whose mean return reaches `threshold`
    (None: never). The untrained policy (step 0) does not count: a random network is now and then a good
    controller by luck, which training then usually unlearns."""
    for steps, mean_return, *_ in curve:
        if steps > 0 and mean_return >= threshold:
            return int(steps)
    return None
