"""Trained agents on disk, without pickle: safetensors weights + config.json, and one loader for all of them.

    q_learning/ sarsa/ greedy/          q_table.safetensors (q[state, action]), config.json
    reinforce/ reinforce_baseline/      policy.safetensors (+ critic.safetensors), config.json
    a2c/ ppo/ dqn/                      policy.safetensors, config.json (rebuilt by hfrepro.rlbasics.sb3.load)

    agent = load("runs/rl_basics/ppo")
    actions = agent.act(states)          # greedy actions for a batch of states
    rewards(agent, episodes=20, seed=0)  # the greedy policy's return in each of 20 episodes
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_write_json
from hfrepro.rlbasics import evaluation, reinforce, sb3, tabular

TABULAR = ("q_learning", "sarsa", "greedy")
OWN = ("reinforce", "reinforce_baseline")


def save_table(q: np.ndarray, folder: str | Path, algo: str, settings: dict) -> Path:
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"q": q.astype(np.float32)}, str(folder / "q_table.safetensors"))
    atomic_write_json(folder / "config.json", {"algorithm": algo, "env_id": tabular.ENV_ID,
                                               "map_name": settings["map_name"], "is_slippery": settings["slippery"],
                                               **settings["learner"]})
    return folder


def save_nets(policy, critic, folder: str | Path, algo: str, hyper: dict) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(policy.state_dict(), str(folder / "policy.safetensors"))
    if critic is not None:
        save_file(critic.state_dict(), str(folder / "critic.safetensors"))
    atomic_write_json(folder / "config.json", {"algorithm": algo, "env_id": reinforce.ENV_ID,
                                               "architecture": "Linear(4, hidden) - Tanh - Linear(hidden, 2)",
                                               **hyper})
    return folder


@dataclass
class Agent:
    algorithm: str
    env_id: str
    act: Callable[[np.ndarray], np.ndarray]   # greedy actions for a batch of states
    config: dict
    q: np.ndarray | None = None               # the Q-table of a tabular agent


def load(folder: str | Path) -> Agent:
    """Any agent `hfrepro rl-basics` saved, by its folder."""
    folder = Path(folder)
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise UserError(f"{folder} holds no agent saved by hfrepro rl-basics (no config.json)", where=str(folder),
                        fix="name a model folder of a run, e.g. runs/rl_basics/ppo or runs/rl_basics/q_learning")
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    algo = cfg.get("algorithm")
    if algo in TABULAR:
        from safetensors.numpy import load_file

        q = load_file(str(folder / "q_table.safetensors"))["q"]
        return Agent(algo, cfg["env_id"], lambda states: q[np.asarray(states, dtype=int)].argmax(-1), cfg, q)
    if algo in OWN:
        from safetensors.torch import load_file

        policy = reinforce.mlp(4, 2, int(cfg["hidden"]))
        policy.load_state_dict(load_file(str(folder / "policy.safetensors")))
        return Agent(algo, cfg["env_id"], reinforce.greedy_actor(policy), cfg)
    if algo in sb3.ALGORITHMS:
        model = sb3.load(folder)
        return Agent(algo, cfg["env_id"], lambda states: model.predict(states, deterministic=True)[0], cfg)
    raise UserError(f"{cfg_file}: unknown algorithm {algo!r}", where=str(cfg_file),
                    fix=f"an agent of hfrepro rl-basics: {', '.join(TABULAR + OWN + sb3.ALGORITHMS)}")


def rewards(agent: Agent, episodes: int, seed: int) -> list[float]:
    """The greedy policy's return in each of `episodes` episodes, episode i starting from reset(seed=seed + i):
    the protocol of the run's own evaluation (FrozenLake: 1 at the goal, else 0; CartPole: the steps survived)."""
    if agent.q is not None:
        lake = {"map_name": agent.config["map_name"], "slippery": agent.config["is_slippery"]}
        return tabular.evaluate(tabular.greedy(agent.q), episodes, seed, **lake).astype(float).tolist()
    return evaluation.evaluate(agent.act, episodes, seed, agent.env_id)
