"""The environment protocol shared by every jaxmob environment (gymnax style).

An environment object holds only static configuration; everything a step reads
from the world lives in an explicit `params` pytree and everything it changes in
a `state` pytree, so `jax.jit` compiles one program per configuration and
`jax.vmap` over keys, states and params steps thousands of cities at once:

    obs, state = env.reset(key, params)
    obs, state, reward, done, info = env.step(key, state, action, params)

Agents are an array axis (obs `(A, obs_dim)`, actions `(A,)`, rewards `(A,)`).
What an agent is (a region, a taxi, a facility) is the environment's business;
what a learner may know about the agents is one declared record,
`agents(params) -> Agents` (which are real, which actions are valid, a logit
prior, a token layout or an agent graph where the environment has one), so a
learner never needs to know which environment it trains on and an environment
never learns which learner asked. No method may branch in Python on a traced value.

Beyond the dynamics an environment says how its reward becomes a learning
reward (`learning_reward`: credit sharing and optional shaping with traced
coefficients), what a step contributes to the training metrics (`step_stats`,
`training_metrics`) and the metrics of a finished episode (`episode_metrics`).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Spec:
    """Shape and dtype of one array an environment consumes or produces.

    `num_values` is the number of discrete choices for integer action specs
    (values lie in `[0, num_values)`), None for continuous arrays.
    """

    shape: tuple
    dtype: Any
    num_values: int | None = None

    def zeros(self) -> jax.Array:
        """An all-zero array of this spec (for building buffers before a rollout)."""
        return jnp.zeros(self.shape, self.dtype)

    def sample(self, key: jax.Array) -> jax.Array:
        """A uniformly random array of this spec: integers in [0, num_values), or reals in
        [-1, 1], the range of every jaxmob environment's continuous actions (jittable)."""
        if self.num_values is not None:
            return jax.random.randint(key, self.shape, 0, self.num_values, self.dtype)
        return jax.random.uniform(key, self.shape, self.dtype, -1.0, 1.0)


@dataclass(frozen=True)
class Agents:
    """What a learner may know about the agents of one city, declared by the environment.

    mask: `(A,)` bool, the agents that learn (False: padding of a padded city, or
        agents that follow a fixed rule).
    action_mask: `(A, num_actions)` bool, the discrete actions each agent may take
        (None for continuous actions).
    logit_prior: `(num_actions,)` float32 added to a learned policy's logits: where
        one action is the sensible default (stay), a prior toward it makes an
        untrained policy behave like the do-nothing operator (None: continuous).
    tokens: where observations and the global state are made of per-entity tokens
        (cells), their layout for attention policies: `local_tokens`,
        `global_tokens` and `token_dim`, the tokens coming first.
    graph: where agents are the nodes of a graph, what graph learners need:
        `neighbours` (A, K) int and `neighbour_mask` (A, K) bool, each agent's
        `kind` (1 learning, 0 static) and `region`, the observation's `history`
        rows and the `focus` feature column that marks the agents around the
        current event.
    """

    mask: Any
    action_mask: Any = None
    logit_prior: Any = None
    tokens: dict | None = None
    graph: dict | None = None

    @classmethod
    def discrete(cls, mask, num_actions: int, action_mask=None, logit_prior=None, **kw) -> "Agents":
        """Agents with `num_actions` discrete actions: every action valid and no prior unless given."""
        mask = jnp.asarray(mask, bool)
        if action_mask is None:
            action_mask = jnp.ones(mask.shape + (num_actions,), bool)
        if logit_prior is None:
            logit_prior = jnp.zeros((num_actions,), jnp.float32)
        return cls(mask=mask, action_mask=action_mask, logit_prior=logit_prior, **kw)


class Environment(abc.ABC):
    """Base class of pure-function multi-agent environments.

    Subclasses implement `reset`, `step`, `observe`, `global_state`,
    `observation_spec`, `action_spec`, `agents`, `episode_length` and
    `episode_metrics`. `step_auto_reset` below turns any of them into an endless
    stream of episodes for batched rollouts.
    """

    agent_name: str = "agent"  # what one agent is ("region", "taxi", "facility"): agent i is f"{agent_name}_{i}"

    @abc.abstractmethod
    def reset(self, key: jax.Array, params) -> tuple[jax.Array, Any]:
        ...

    @abc.abstractmethod
    def step(self, key: jax.Array, state, action: jax.Array, params):
        """Returns `(obs, state, reward, done, info)`; `done` is a scalar bool."""
        ...

    @abc.abstractmethod
    def observation_spec(self, params) -> Spec:
        ...

    @abc.abstractmethod
    def action_spec(self, params) -> Spec:
        ...

    @abc.abstractmethod
    def agents(self, params) -> Agents:
        """What a learner may know about the agents of this city (see `Agents`)."""
        ...

    @abc.abstractmethod
    def global_state(self, state, params) -> jax.Array:
        """Flat float32 vector describing the whole world, for centralised critics."""
        ...

    @abc.abstractmethod
    def observe(self, state, params) -> jax.Array:
        """`(A, obs_dim)` float32 observations of `state` (what `reset`/`step` return)."""
        ...

    def distinct_observations(self, state, params):
        """`(table (U, obs_dim), index (A,) int32)` with `observe(state)[a] == table[index[a]]`,
        for environments where many agents share one observation (idle taxis in one cell):
        a network that treats agents alike then runs once per distinct observation, U < A.
        None (the default): every agent's observation may differ."""
        return None

    @property
    @abc.abstractmethod
    def episode_length(self) -> int:
        """Steps per episode (static): scales per-rollout returns to per-episode ones."""
        ...

    @abc.abstractmethod
    def episode_metrics(self, state, params) -> dict:
        """The metrics of the episode that ended in `state` (jittable), by name."""
        ...

    def num_agents(self, params) -> int:
        return int(self.action_spec(params).shape[0])

    def num_actions(self, params) -> int:
        spec = self.action_spec(params)
        if spec.num_values is None:
            raise TypeError(f"{type(self).__name__} has continuous actions (no action count)")
        return int(spec.num_values)

    def learning_reward(self, state, action, reward, info, params, coefs: dict) -> jax.Array:
        """`(A,)` the reward an agent learns from (default: its own reward, 0 for
        padding). `coefs` holds the traced shaping coefficients the environment's
        plug-in declared (swept like learning rates); `state` is the state the
        step started from."""
        return reward * self.agents(params).mask.astype(reward.dtype)

    def step_stats(self, info, reward, params) -> dict:
        """Scalars of one step to be summed over a rollout (default: the team reward)."""
        return {"reward": (reward * self.agents(params).mask).sum()}

    def training_metrics(self, sums: dict, num_envs: int) -> dict:
        """Training metrics of one update from the rollout sums of `step_stats`
        over `num_envs` environments (the trainer adds `episode_return`)."""
        return {}

    def step_auto_reset(self, key, state, action, params, reset_obs, reset_state):
        """`step`, restarting finished episodes from `(reset_obs, reset_state)`;
        see the module function `step_auto_reset`."""
        return step_auto_reset(self, key, state, action, params, reset_obs, reset_state)


def select_tree(pred: jax.Array, on_true, on_false):
    """Leafwise `where(pred, a, b)` for two pytrees of the same structure.

    `pred` is a scalar bool (it broadcasts against every leaf), so this is the
    branch-free way to swap whole states under `jit`/`vmap`.
    """
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def accumulate(totals, increments):
    """Add per-step counts to running episode totals, leaf by leaf (same structure).

    Environments keep such totals in their state so episode metrics need no
    Python-side bookkeeping and survive `vmap`/`scan` unchanged.
    """
    return jax.tree.map(lambda a, b: a + jnp.asarray(b, dtype=jnp.asarray(a).dtype), totals, increments)


def step_auto_reset(env: Environment, key: jax.Array, state, action: jax.Array, params, reset_obs, reset_state):
    """Step, and where the episode ended continue from a precomputed reset state.

    `(reset_obs, reset_state)` come from one `env.reset` call made by the caller
    (once per rollout chunk, say), not from a fresh reset inside every step: a
    reset per step would double the work of thousands of batched cities for a
    state that is used only at episode ends. Environments whose reset is
    deterministic (Poisson demand) lose nothing; replay environments repeat the
    pre-sampled day until the caller draws a new reset state.

    Returns `(obs, state, reward, done, info)` where obs/state are already the
    next episode's when `done`; `info["final_metrics"]` holds the finished
    episode's totals (valid where `done`) and `info["final_obs"]` the last
    observation of the finished episode (for bootstrapping truncated returns).
    """
    obs, next_state, reward, done, info = env.step(key, state, action, params)
    info = dict(info)
    info["final_obs"] = obs
    metrics = getattr(next_state, "metrics", None)
    if metrics is not None:
        info["final_metrics"] = metrics
    obs = jnp.where(done, reset_obs, obs)
    next_state = select_tree(done, reset_state, next_state)
    return obs, next_state, reward, done, info


def is_int(value) -> bool:
    """True for Python/NumPy integers but not bools (config validation helper)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


NEG_INF = -1e9


def action_logits(logits, action_mask, prior):
    """Logits plus the environment's fixed prior (`Agents.logit_prior`), with
    invalid actions (`Agents.action_mask`) masked out."""
    return jnp.where(action_mask, logits + prior, NEG_INF)


def shares_observations(env: Environment) -> bool:
    """Whether `env` groups agents by observation (`Environment.distinct_observations`)."""
    return type(env).distinct_observations is not Environment.distinct_observations


def runs_per_distinct_observation(policy, env: Environment) -> bool:
    """Whether `policy` may run once per distinct observation of `env`: it treats agents
    alike (`policy.agent_symmetric`) and the env groups agents by observation."""
    return getattr(policy, "agent_symmetric", False) and shares_observations(env)


def per_agent(policy, params, groups, obs, gstate, index=None):
    """Every agent's (logits, value). With `index`, `obs` holds the distinct observations
    (`Environment.distinct_observations`) and an agent-symmetric network runs once per row,
    each agent reading its row: the same outputs, and through the gather the same gradient
    (summed over the agents of a row), as running it once per agent."""
    logits, values = policy.apply(params, groups, obs, gstate)
    if index is None:
        return logits, values
    return jnp.take_along_axis(logits, index[..., None], axis=-2), jnp.take_along_axis(values, index, axis=-1)
