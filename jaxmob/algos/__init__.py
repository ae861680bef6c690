"""Learning algorithms, independent of any environment: the PPO core (`ppo`),
parameter-sharing schemes (`policies`) and HAG-PS (`hagps`). Baselines and
bounds belong to their environment's package (`jaxmob.envs.<name>`)."""
