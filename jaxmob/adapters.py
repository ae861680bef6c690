"""jaxmob cities behind the standard Python RL APIs: PettingZoo and Gymnasium.

* `ParallelEnv` (PettingZoo): one city, every real agent an agent of the API, named by the
  environment (`region_17`, `taxi_3`, `facility_40`). Discrete agents observe a dict
  `{"observation", "action_mask"}` (PettingZoo's convention for masked actions), continuous
  ones a vector; each acts with `Discrete(n)` or a `Box(-1, 1, (1,))`. The episode ends by its
  horizon, so every agent is truncated together.
* `GymEnv` (Gymnasium): one city, one learner controlling all agents: observation `(A, obs_dim)`,
  action `MultiDiscrete` or `Box(-1, 1, (A,))`, reward the sum of the agents' rewards.
* `VectorEnv` (Gymnasium): `num_envs` such cities stepped as one `vmap`ped call, reset in the
  same step as they end (`AutoresetMode.SAME_STEP`, the last observation in `info["final_obs"]`).

Cost: every step crosses from JAX to NumPy and back (and the PettingZoo adapter builds a dict per
agent), so these adapters are for RLlib, TorchRL, Stable-Baselines3 or your own PyTorch code; the
native path (`jaxmob.make`, or jaxmob's trainer: environment and learner in one compiled program)
stays the fast one. `benchmarks/bench_adapters.py` measures the difference.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .api import build

__all__ = ["ParallelEnv", "GymEnv", "VectorEnv"]


class _City:
    """One compiled city: `reset(seed)` and `step(key, state, action)` as jitted functions, the
    specs, and which agents are real."""

    def __init__(self, env_id: str, scenario=None, day: str | None = None, **options):
        built = build(env_id, scenario, **options)
        if day is None:
            self.env, self.params = built.env, built.env_params
        else:
            days = {**built.validation, **built.test}
            if day not in days:
                raise ValueError(f"{env_id}: no held-out day {day!r}; choose from {', '.join(days)}")
            self.env, self.params = built.eval_env, days[day]
        self.obs_spec, self.act_spec = self.env.observation_spec(self.params), self.env.action_spec(self.params)
        agents = self.env.agents(self.params)
        self.real = np.flatnonzero(np.asarray(agents.mask))
        self.action_mask = None if agents.action_mask is None else np.asarray(agents.action_mask)
        self.discrete = self.act_spec.num_values is not None
        env, params = self.env, self.params
        self.reset = jax.jit(lambda key: env.reset(key, params))
        self.step = jax.jit(lambda key, state, action: env.step(key, state, action, params))
        self.horizon = env.episode_length

    def full_action(self, per_agent: dict | np.ndarray) -> jax.Array:
        """The env's (A,) action from the real agents' (padding agents: 0)."""
        action = np.zeros(self.act_spec.shape, self.act_spec.dtype)
        action[self.real] = per_agent
        return jnp.asarray(action)


def _parallel_base():
    from pettingzoo import ParallelEnv as Base

    return Base


class ParallelEnv(_parallel_base()):
    """A PettingZoo `ParallelEnv` over one city (see the module doc). `day` replays a held-out
    day (validation or test) instead of drawing training episodes."""

    metadata = {"name": "jaxmob_parallel_v1", "render_modes": []}

    def __init__(self, env_id: str, scenario: str | None = None, day: str | None = None, **options):
        from gymnasium import spaces

        self._city = city = _City(env_id, scenario, day, **options)
        self.possible_agents = [f"{city.env.agent_name}_{i}" for i in city.real]
        self.agents: list = []
        obs_box = spaces.Box(-np.inf, np.inf, city.obs_spec.shape[1:], np.float32)
        if city.discrete:
            n = city.act_spec.num_values
            self._obs_space = spaces.Dict({"observation": obs_box, "action_mask": spaces.Box(0, 1, (n,), np.int8)})
            self._act_space = spaces.Discrete(n)
        else:
            self._obs_space, self._act_space = obs_box, spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._key = jax.random.key(0)
        self._state, self._t = None, 0

    @functools.lru_cache(maxsize=None)  # noqa: B019 (PettingZoo wants the same object every call)
    def observation_space(self, agent):
        return self._obs_space

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def action_space(self, agent):
        return self._act_space

    def _observations(self, obs) -> dict:
        obs = np.asarray(obs, np.float32)[self._city.real]
        if not self._city.discrete:
            return dict(zip(self.agents, obs))
        masks = (np.ones((len(self._city.real), self._city.act_spec.num_values), np.int8) if self._city.action_mask is None
                 else self._city.action_mask[self._city.real].astype(np.int8))
        return {a: {"observation": o, "action_mask": m} for a, o, m in zip(self.agents, obs, masks)}

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._key = jax.random.key(seed)
        self._key, key = jax.random.split(self._key)
        obs, self._state = self._city.reset(key)
        self.agents, self._t = list(self.possible_agents), 0
        return self._observations(obs), {a: {} for a in self.agents}

    def step(self, actions: dict):
        if not self.agents:
            raise RuntimeError("the episode is over: call reset()")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"no action for {len(missing)} live agent(s), e.g. {missing[0]}")
        per_agent = np.array([np.asarray(actions[a]).reshape(()) for a in self.agents])
        self._key, key = jax.random.split(self._key)
        obs, self._state, reward, done, _ = self._city.step(key, self._state, self._city.full_action(per_agent))
        self._t += 1
        reward = np.asarray(reward, np.float64)[self._city.real]
        over = bool(done) or self._t >= self._city.horizon
        agents = self.agents
        observations = self._observations(obs)
        rewards = {a: float(r) for a, r in zip(agents, reward)}
        terminations = dict.fromkeys(agents, False)  # an episode ends by its horizon: truncation
        truncations = dict.fromkeys(agents, over)
        infos = {a: {} for a in agents}
        if over:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def episode_metrics(self) -> dict:
        """The environment's metrics of the episode so far (service ratio, cruise minutes, ...)."""
        return {k: float(v) for k, v in self._city.env.episode_metrics(self._state, self._city.params).items()}

    def close(self):
        pass


def _joint_spaces(city: _City):
    from gymnasium import spaces

    obs = spaces.Box(-np.inf, np.inf, (len(city.real), city.obs_spec.shape[1]), np.float32)
    if city.discrete:
        act = spaces.MultiDiscrete(np.full(len(city.real), city.act_spec.num_values, np.int64))
    else:
        act = spaces.Box(-1.0, 1.0, (len(city.real),), np.float32)
    return obs, act


def _gym_base():
    import gymnasium

    return gymnasium.Env


class GymEnv(_gym_base()):
    """A Gymnasium `Env` over one city, one learner for all its agents (see the module doc)."""

    metadata = {"render_modes": []}

    def __init__(self, env_id: str, scenario: str | None = None, day: str | None = None, **options):
        self._city = _City(env_id, scenario, day, **options)
        self.observation_space, self.action_space = _joint_spaces(self._city)
        self._key, self._state, self._t = jax.random.key(0), None, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.key(seed)
        self._key, key = jax.random.split(self._key)
        obs, self._state = self._city.reset(key)
        self._t = 0
        return np.asarray(obs, np.float32)[self._city.real], {}

    def step(self, action):
        self._key, key = jax.random.split(self._key)
        full = self._city.full_action(np.asarray(action, self._city.act_spec.dtype))
        obs, self._state, reward, done, _ = self._city.step(key, self._state, full)
        self._t += 1
        over = bool(done) or self._t >= self._city.horizon
        reward = float(np.asarray(reward, np.float64)[self._city.real].sum())
        return np.asarray(obs, np.float32)[self._city.real], reward, False, over, {}


def _vector_base():
    import gymnasium

    return gymnasium.vector.VectorEnv


class VectorEnv(_vector_base()):
    """`num_envs` cities of one scenario in one vmapped call, one learner for all agents of each
    (see the module doc)."""

    def __init__(self, env_id: str, num_envs: int, scenario: str | None = None, **options):
        from gymnasium.vector import AutoresetMode
        from gymnasium.vector.utils import batch_space

        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}
        self._city = city = _City(env_id, scenario, **options)
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = _joint_spaces(city)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        env, params, real = city.env, city.params, jnp.asarray(city.real)

        def reset(keys):
            obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
            return obs[:, real], state

        def step(keys, state, action, reset_keys):
            full = jnp.zeros((num_envs, *city.act_spec.shape), city.act_spec.dtype).at[:, real].set(action)
            obs, state, reward, done, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, state, full, params)
            def restart():  # the cities whose episode ended start a new one (only in a step where one did)
                fresh_obs, fresh = reset(reset_keys)
                pick = lambda a, b: jnp.where(done.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)  # noqa: E731
                return pick(fresh_obs, obs[:, real]), jax.tree.map(pick, fresh, state)

            next_obs, next_state = jax.lax.cond(done.any(), restart, lambda: (obs[:, real], state))
            return obs[:, real], next_obs, next_state, reward[:, real].sum(1), done

        self._reset, self._step = jax.jit(reset), jax.jit(step)
        self._key, self._state = jax.random.key(0), None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._key = jax.random.key(seed)
        self._key, key = jax.random.split(self._key)
        obs, self._state = self._reset(jax.random.split(key, self.num_envs))
        return np.asarray(obs, np.float32), {}

    def step(self, actions):
        self._key, key, reset_key = jax.random.split(self._key, 3)
        actions = jnp.asarray(np.asarray(actions, self._city.act_spec.dtype))
        last, obs, self._state, reward, done = self._step(jax.random.split(key, self.num_envs), self._state, actions,
                                                          jax.random.split(reset_key, self.num_envs))
        done = np.asarray(done)
        infos = {"final_obs": np.asarray(last, np.float32), "_final_obs": done.copy()} if done.any() else {}
        return (np.asarray(obs, np.float32), np.asarray(reward, np.float64), np.zeros(self.num_envs, bool), done, infos)
