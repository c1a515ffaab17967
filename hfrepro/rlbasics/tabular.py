"""Tabular reinforcement learning on FrozenLake: Q-learning and SARSA (model-free, from sampled steps), value
iteration (model-based, from the environment's transition model), and the random policy to beat.

FrozenLake-v1: the agent walks from S to the goal G on a frozen lake without falling into a hole H. The ice is
slippery: an action moves the agent in the intended direction only a third of the time, else to one side.

    state   the cell, 0..15 on the 4x4 map (row * 4 + column)
    action  0 left, 1 down, 2 right, 3 up
    reward  1 on reaching G, else 0; an episode ends in a hole, at G, or after 100 steps

A Q-table `q[s, a]` estimates the expected discounted return of taking action a in state s and acting well
afterwards. Its greedy policy takes argmax_a q[s, a] in every state; its value function is V(s) = max_a q[s, a].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ARROWS = "←↓→↑"  # FrozenLake's actions 0..3
ENV_ID = "FrozenLake-v1"


def make_env(map_name: str = "4x4", slippery: bool = True):
    import gymnasium as gym

    return gym.make(ENV_ID, map_name=map_name, is_slippery=slippery)


@dataclass
class TabularSettings:
    method: str              # "q_learning" or "sarsa"
    episodes: int
    alpha: float             # step size
    gamma: float             # discount
    epsilon_start: float     # exploration: epsilon falls linearly from start to end ...
    epsilon_end: float
    epsilon_decay: float     # ... over this fraction of the episodes, then stays at epsilon_end


def epsilon_at(episode: int, s: TabularSettings) -> float:
    span = max(1.0, s.epsilon_decay * s.episodes)
    return max(s.epsilon_end, s.epsilon_start - (s.epsilon_start - s.epsilon_end) * episode / span)


def epsilon_greedy(q_row: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """Exploration vs exploitation: with probability epsilon a random action (explore), otherwise the action
    with the highest estimated value (exploit; ties broken at random, so an all-zero row is a random step)."""
    if rng.random() < epsilon:
        return int(rng.integers(len(q_row)))
    best = np.flatnonzero(q_row == q_row.max())
    return int(best[rng.integers(len(best))])


def train(settings: TabularSettings, seed: int, map_name: str = "4x4", slippery: bool = True) -> dict:
    """Learn a Q-table from `settings.episodes` episodes of experience. Returns the table and, per training
    episode, whether it reached the goal (the success of the epsilon-greedy behaviour, exploration included)."""
    if settings.method not in ("q_learning", "sarsa"):
        raise ValueError(f"unknown tabular method {settings.method!r}")
    env = make_env(map_name, slippery)
    n_states, n_actions = env.observation_space.n, env.action_space.n
    q = np.zeros((n_states, n_actions))
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)  # seeds the environment's slips; later resets continue its random stream
    successes = np.zeros(settings.episodes, dtype=np.int8)
    alpha, gamma = settings.alpha, settings.gamma
    for episode in range(settings.episodes):
        epsilon = epsilon_at(episode, settings)
        state, _ = env.reset()
        action = epsilon_greedy(q[state], epsilon, rng)
        done = False
        while not done:
            next_state, reward, terminated, truncated, _ = env.step(action)
            next_action = epsilon_greedy(q[next_state], epsilon, rng)
            if terminated:        # a hole or the goal: no future
                future = 0.0
            elif settings.method == "q_learning":
                # Q-learning (off-policy):  Q(s,a) <- Q(s,a) + alpha [r + gamma max_a' Q(s',a') - Q(s,a)]
                future = q[next_state].max()
            else:
                # SARSA (on-policy):        Q(s,a) <- Q(s,a) + alpha [r + gamma Q(s',a') - Q(s,a)],
                #                           a' = the action the epsilon-greedy behaviour really takes next
                future = q[next_state, next_action]
            q[state, action] += alpha * (reward + gamma * future - q[state, action])
            state, action, done = next_state, next_action, terminated or truncated
        successes[episode] = int(reward > 0)
    return {"q": q, "train_success": successes}


def value_iteration(map_name: str = "4x4", slippery: bool = True, gamma: float = 0.99,
                    tol: float = 1e-10) -> np.ndarray:
    """Model-based planning: FrozenLake's own model `P[s][a] = [(probability, next state, reward, terminated)]`
    gives the optimal Q by repeating the Bellman optimality update until it stops changing:

        Q(s,a) = sum_{s'} P(s'|s,a) [r + gamma max_a' Q(s',a')]
    """
    env = make_env(map_name, slippery)
    model = env.unwrapped.P
    n_states, n_actions = env.observation_space.n, env.action_space.n
    q = np.zeros((n_states, n_actions))
    while True:
        v = q.max(axis=1)
        new = np.array([[sum(p * (r + gamma * v[s2] * (not term)) for p, s2, r, term in model[s][a])
                         for a in range(n_actions)] for s in range(n_states)])
        if np.abs(new - q).max() < tol:
            return new
        q = new


def greedy(q: np.ndarray):
    """The greedy policy of a Q-table (ties: the lowest action, so evaluation is deterministic)."""
    return lambda state: int(np.argmax(q[state]))


def random_policy(seed: int, n_actions: int = 4):
    rng = np.random.default_rng(seed)
    return lambda state: int(rng.integers(n_actions))


def evaluate(policy, episodes: int, seed: int, map_name: str = "4x4", slippery: bool = True) -> np.ndarray:
    """1 or 0 per episode: did `policy` reach the goal? Episode i starts from reset(seed=seed + i), so every
    policy meets the same slips wherever it takes the same steps (the lake draws one random number a step)."""
    env = make_env(map_name, slippery)
    out = np.zeros(episodes, dtype=np.int8)
    for i in range(episodes):
        state, _ = env.reset(seed=seed + i)
        done, reward = False, 0.0
        while not done:
            state, reward, terminated, truncated, _ = env.step(policy(state))
            done = terminated or truncated
        out[i] = int(reward > 0)
    return out


def policy_map(q: np.ndarray, map_name: str = "4x4", slippery: bool = True) -> list[str]:
    """The greedy policy drawn on the lake: an arrow on every frozen cell, H holes, G the goal."""
    desc = make_env(map_name, slippery).unwrapped.desc.astype(str)
    rows = []
    for r, line in enumerate(desc):
        cells = []
        for c, ch in enumerate(line):
            cells.append(ch if ch in "HG" else ARROWS[int(np.argmax(q[r * len(line) + c]))])
        rows.append(" ".join(cells))
    return rows
