"""The RL engine: rollouts, advantages, losses and KL control for PPO and A2C."""
