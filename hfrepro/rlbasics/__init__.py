"""Reinforcement learning from first principles, on gymnasium's classic tasks (the RL chapter of the road).

The vocabulary of the source material, on the objects this package builds (docs/rl_basics.md has the table):

- **environment**: `gymnasium.make("FrozenLake-v1")` (a slippery 4x4 lake) and `gymnasium.make("CartPole-v1")`
  (a pole on a cart); `env.step(action)` returns the next state and the reward.
- **agent**: the code that picks actions and learns from the rewards: a Q-table (`tabular`), a policy network
  (`reinforce`), a stable-baselines3 model (`sb3`).
- **state**: FrozenLake's cell number (0..15); CartPole's four numbers (cart position and velocity, pole angle
  and angular velocity).
- **action**: FrozenLake's left/down/right/up; CartPole's push left/right.
- **reward**: 1 for reaching FrozenLake's goal, else 0; +1 for every step CartPole's pole stays up (at most 500).
- **policy**: the mapping from state to action: the arrows of a Q-table's argmax, or the network pi(a|s).
- **value function**: the expected discounted return: Q(s, a) of the table, the critic V(s) of REINFORCE with a
  baseline, A2C and PPO.
- **exploration vs exploitation**: epsilon-greedy (a random action with probability epsilon) against always the
  best-known action (epsilon = 0), measured on FrozenLake.
- **model-free vs model-based**: Q-learning, SARSA, REINFORCE, A2C, PPO and DQN learn from sampled steps only;
  value iteration plans with FrozenLake's own transition model `env.unwrapped.P`.

Modules: `tabular` (Q-learning, SARSA, value iteration), `reinforce` (our REINFORCE, with and without a
baseline, and the variance of its gradient estimate), `sb3` (A2C, PPO, DQN from stable-baselines3),
`evaluation` (greedy episodes on CartPole, steps to 475), `jobs` (independent (algorithm, seed) runs side by
side, one per core), `results` (tables and plots).
"""
