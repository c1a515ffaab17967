"""`hfrepro rl-play`: watch a trained agent of `hfrepro rl-basics` act, and measure it.

    hfrepro rl-play runs/rl_basics/ppo                   # 20 greedy CartPole episodes: returns
    hfrepro rl-play runs/rl_basics/q_learning --show     # the policy's arrows, and one episode step by step
    hfrepro rl-play runs/rl_basics/sarsa --episodes 1000 --seed 7
"""

from __future__ import annotations

import numpy as np

from hfrepro.errors import UserError
from hfrepro.rlbasics import evaluation, saved, tabular


def register(sub) -> None:
    p = sub.add_parser("rl-play", help="chapter RL basics: play a trained agent's greedy episodes",
                       description="Play the greedy episodes of an agent saved by `hfrepro rl-basics` (a Q-table "
                                   "on FrozenLake, or a REINFORCE / A2C / PPO / DQN policy on CartPole) and "
                                   "print what it scored.")
    p.add_argument("model", help="the agent's folder, e.g. runs/rl_basics/ppo or runs/rl_basics/q_learning")
    p.add_argument("--episodes", type=int, default=20, help="greedy episodes to play (default 20)")
    p.add_argument("--seed", type=int, default=0, help="episode i starts from reset(seed=seed + i)")
    p.add_argument("--show", action="store_true", help="FrozenLake: also draw one episode, step by step")
    p.set_defaults(func=_play)


def _play(args) -> int:
    if args.episodes < 1:
        raise UserError(f"--episodes must be at least 1, not {args.episodes}", fix="e.g. --episodes 20")
    agent = saved.load(args.model)
    if agent.q is not None:
        lake = {"map_name": agent.config["map_name"], "slippery": agent.config["is_slippery"]}
        print(f"{agent.algorithm} on FrozenLake {lake['map_name']} ({'slippery' if lake['slippery'] else 'still'}"
              f" ice); greedy policy (H hole, G goal):")
        print("\n".join("  " + row for row in tabular.policy_map(agent.q, **lake)))
        success = np.asarray(saved.rewards(agent, args.episodes, args.seed))
        print(f"reached the goal in {int(success.sum())} of {args.episodes} episodes ({success.mean():.1%})")
        if args.show:
            _show_lake(agent.q, lake, args.seed)
        return 0
    returns = saved.rewards(agent, args.episodes, args.seed)
    print(f"{agent.algorithm} on {agent.env_id}: greedy return {np.mean(returns):.1f} ± {np.std(returns):.1f} "
          f"over {args.episodes} episodes (min {min(returns):.0f}, max {max(returns):.0f}; solved at "
          f"{evaluation.solved_at(agent.env_id):.0f})")
    return 0


def _show_lake(q: np.ndarray, lake: dict, seed: int) -> None:
    import gymnasium as gym

    env = gym.make(tabular.ENV_ID, map_name=lake["map_name"], is_slippery=lake["slippery"], render_mode="ansi")
    state, _ = env.reset(seed=seed)
    done, t = False, 0
    while not done:
        action = int(np.argmax(q[state]))
        state, reward, terminated, truncated, _ = env.step(action)
        done, t = terminated or truncated, t + 1
        board = env.render().rstrip().split("\n")[1:]  # the first line repeats the action
        print(f"step {t}: action {tabular.ARROWS[action]}; where the ice took the agent (highlighted):")
        print("\n".join("  " + row for row in board))
    print("reached the goal" if reward > 0 else "fell into a hole" if terminated else "ran out of steps")
