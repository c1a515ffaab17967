"""A2C, PPO and DQN from stable-baselines3 on CartPole, with the RL Zoo's tuned hyper-parameters (the budgets'
YAML holds them, in the Zoo's own notation: `lin_0.001` is a learning rate falling linearly from 0.001 to 0).

    A2C   actor-critic: the policy (actor) follows the advantage r + gamma V(s') - V(s) of a learned critic
    PPO   A2C's actor-critic with a clipped surrogate objective (each update stays near the policy that played)
          and GAE advantages
    DQN   value-based and off-policy: a network Q(s, a), a replay buffer, a target network, epsilon-greedy

A trained model is saved as `policy.safetensors` (the policy's weights) and `config.json` (what rebuilds it):
no pickle is written or read (`load`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from hfrepro.errors import UserError

ALGORITHMS = ("a2c", "ppo", "dqn")
ENV_ID = "CartPole-v1"


def algorithm_class(name: str):
    import stable_baselines3 as sb3

    return {"a2c": sb3.A2C, "ppo": sb3.PPO, "dqn": sb3.DQN}[name]


def _schedule(value: Any) -> Any:
    """The Zoo's `lin_<x>`: a value falling linearly from x to 0 over training (SB3 passes progress 1 -> 0)."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])
        return lambda progress: progress * start
    return value


def check_hyperparameters(name: str, hyper: dict, where: str = "") -> None:
    """Refuse an argument the algorithm does not take, before anything trains."""
    import inspect

    if name not in ALGORITHMS:
        raise UserError(f"unknown stable-baselines3 algorithm {name!r}", where=where or None,
                        fix=f"use one of: {', '.join(ALGORITHMS)}")
    accepted = set(inspect.signature(algorithm_class(name).__init__).parameters) | {"n_envs"}
    unknown = sorted(set(hyper) - accepted - {"policy", "env", "seed", "device"})
    if unknown:
        raise UserError(f"{name}: unknown hyper-parameter(s) {', '.join(unknown)}", where=where or None,
                        fix=f"see stable_baselines3.{name.upper()}'s arguments")
    for key, value in hyper.items():
        if isinstance(value, str) and value.startswith("lin_"):
            try:
                float(value[4:])
            except ValueError:
                raise UserError(f"{name}: `{key}: {value}` is not lin_<number>", where=where or None,
                                fix="write a linear schedule as lin_0.001") from None


def build(name: str, hyper: dict, seed: int):
    """The model, on `n_envs` copies of CartPole (seeded seed, seed+1, ...), on the CPU: these networks are tiny."""
    from stable_baselines3.common.env_util import make_vec_env

    kwargs = {k: _schedule(v) for k, v in hyper.items() if k != "n_envs"}
    env = make_vec_env(ENV_ID, n_envs=int(hyper.get("n_envs", 1)), seed=seed)
    return algorithm_class(name)("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)


def curve_callback(evaluate: Callable, every: int):
    """A stable-baselines3 callback: before training and every `every` environment steps, row
    [steps, *evaluate(act)] of the learning curve, `act` being the model's greedy (deterministic) action."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Curve(BaseCallback):
        def __init__(self):
            super().__init__()
            self.rows: list[list[float]] = []
            self.next = 0

        def _act(self, states):
            return self.model.predict(states, deterministic=True)[0]

        def _on_training_start(self) -> None:
            self.rows.append([0, *evaluate(self._act)])
            self.next = every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next:
                self.rows.append([self.num_timesteps, *evaluate(self._act)])
                self.next += every
            return True

    return Curve()


def train(name: str, hyper: dict, steps: int, seed: int, evaluate: Callable, eval_every: int) -> dict:
    """Build and train (`model.learn`, the library's own loop) with a learning curve. Returns the model too."""
    from stable_baselines3.common.logger import Logger

    model = build(name, hyper, seed)
    model.set_logger(Logger(folder=None, output_formats=[]))  # the curve is ours; SB3's default makes a /tmp folder
    curve = curve_callback(evaluate, eval_every)
    model.learn(total_timesteps=steps, callback=curve)
    if curve.rows[-1][0] == model.num_timesteps:  # taken at the last step, before the last gradient update
        curve.rows.pop()
    curve.rows.append([model.num_timesteps, *evaluate(curve._act)])  # the trained model, as saved
    return {"model": model, "curve": curve.rows, "steps": int(model.num_timesteps)}


def save(model, folder: str | Path, name: str, hyper: dict) -> Path:
    """policy.safetensors + config.json (algorithm, environment, hyper-parameters, library version)."""
    import stable_baselines3
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.policy.state_dict().items()}, str(folder / "policy.safetensors"))
    config = {"algorithm": name, "env_id": ENV_ID, "hyperparameters": hyper,
              "library": f"stable-baselines3 {stable_baselines3.__version__}"}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder


def load(folder: str | Path):
    """A saved model, rebuilt from config.json and its weights (no pickle): `load(f).predict(obs)`."""
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_file = folder / "config.json"
    if not cfg_file.is_file() or not (folder / "policy.safetensors").is_file():
        raise UserError(f"{folder} is not a saved stable-baselines3 model of hfrepro rl-basics",
                        where=str(folder), fix="name a folder holding config.json and policy.safetensors, "
                                               "e.g. runs/rl_basics/ppo")
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    model = build(cfg["algorithm"], cfg["hyperparameters"], seed=0)
    model.policy.load_state_dict(load_file(str(folder / "policy.safetensors")))
    return model
