"""The environment protocol shared by every jaxmob environment (gymnax style).

An environment object holds only static configuration; everything a step reads
from the world lives in an explicit `params` pytree and everything it changes in
a `state` pytree, so `jax.jit` compiles one program per configuration and
`jax.vmap` over keys, states and params steps thousands of cities at once:

    obs, state = env.reset(key, params)
    obs, state, reward, done, info = env.step(key, state, action, params)

Agents are an array axis (obs `(A, obs_dim)`, actions `(A,)`, rewards `(A,)`),
with `agent_mask(params)` marking the real agents of a padded city. What an
agent is (a region, a taxi, a facility) is the environment's business: the
trainer reads the agent count and action count from `action_spec`. No method
may branch in Python on a traced value.

Beyond the dynamics, an environment tells a learner what it needs to know
without the learner knowing the environment: which actions are valid
(`action_mask`), a fixed logit prior (`logit_prior`, e.g. toward "stay"), how
its reward becomes a learning reward (`learning_reward`: credit sharing and
optional shaping with traced coefficients), what a step contributes to the
training metrics (`step_stats`, `training_metrics`) and the metrics of a
finished episode (`episode_metrics`).
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


class Environment(abc.ABC):
    """Base class of pure-function multi-agent environments.

    Subclasses implement `reset`, `step`, `observation_spec`, `action_spec`,
    `agent_mask` and `global_state`. `step_auto_reset` below turns any of them
    into an endless stream of episodes for batched rollouts.
    """

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
    def global_state_spec(self, params) -> Spec:
        ...

    @abc.abstractmethod
    def agent_mask(self, params) -> jax.Array:
        """`(A,)` bool: which agents are real (False for padding of a padded city)."""
        ...

    @abc.abstractmethod
    def global_state(self, state, params) -> jax.Array:
        """Flat float32 vector describing the whole world, for centralised critics."""
        ...

    @abc.abstractmethod
    def observe(self, state, params) -> jax.Array:
        """`(A, obs_dim)` float32 observations of `state` (what `reset`/`step` return)."""
        ...

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

    def action_mask(self, params) -> jax.Array:
        """`(A, num_actions)` bool: the actions each agent may take (default: all)."""
        return jnp.ones((self.num_agents(params), self.num_actions(params)), bool)

    def logit_prior(self, params) -> jax.Array:
        """`(num_actions,)` float32 added to a learned policy's logits (default 0):
        where one action is the sensible default (stay), a prior toward it makes
        an untrained policy behave like the do-nothing operator, not a random one."""
        return jnp.zeros((self.num_actions(params),), jnp.float32)

    def learning_reward(self, state, action, reward, info, params, coefs: dict) -> jax.Array:
        """`(A,)` the reward an agent learns from (default: its own reward, 0 for
        padding). `coefs` holds the traced shaping coefficients the environment's
        plug-in declared (swept like learning rates); `state` is the state the
        step started from."""
        return reward * self.agent_mask(params).astype(reward.dtype)

    def token_layout(self, params) -> dict | None:
        """Where observations and the global state are made of per-entity tokens
        (cells), their layout for attention policies (MADARL): `local_tokens`,
        `global_tokens` and `token_dim`, the tokens coming first. None otherwise."""
        return None

    def agent_graph(self, params) -> dict | None:
        """Where agents are the nodes of a graph (parking facilities), what graph learners need:
        `neighbours` (A, K) int and `neighbour_mask` (A, K) bool, each agent's `kind` (1 learning,
        0 static) and `region`, the observation's `history` rows and the `focus` feature column that
        marks the agents around the current event. None otherwise."""
        return None

    def step_stats(self, info, reward, params) -> dict:
        """Scalars of one step to be summed over a rollout (default: the team reward)."""
        return {"reward": (reward * self.agent_mask(params)).sum()}

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


class AutoResetWrapper(Environment):
    """Wraps an environment so `step` never ends: finished episodes restart from
    a reset state kept inside the wrapped state (drawn once at `reset`).

    The wrapped state is `(env_state, reset_obs, reset_state)`; keeping the reset
    state in the state pytree makes the wrapper a plain environment that any
    rollout loop can `vmap` and `scan` without extra arguments.
    """

    def __init__(self, env: Environment):
        self.env = env

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, key, params):
        obs, state = self.env.reset(key, params)
        return obs, (state, obs, state)

    def step(self, key, wrapped_state, action, params):
        state, reset_obs, reset_state = wrapped_state
        obs, state, reward, done, info = step_auto_reset(self.env, key, state, action, params, reset_obs, reset_state)
        return obs, (state, reset_obs, reset_state), reward, done, info

    def observation_spec(self, params):
        return self.env.observation_spec(params)

    def action_spec(self, params):
        return self.env.action_spec(params)

    def global_state_spec(self, params):
        return self.env.global_state_spec(params)

    def agent_mask(self, params):
        return self.env.agent_mask(params)

    def global_state(self, wrapped_state, params):
        return self.env.global_state(wrapped_state[0], params)

    def observe(self, wrapped_state, params):
        return self.env.observe(wrapped_state[0], params)

    @property
    def episode_length(self) -> int:
        return self.env.episode_length

    def episode_metrics(self, wrapped_state, params):
        return self.env.episode_metrics(wrapped_state[0], params)

    def action_mask(self, params):
        return self.env.action_mask(params)

    def logit_prior(self, params):
        return self.env.logit_prior(params)

    def learning_reward(self, wrapped_state, action, reward, info, params, coefs):
        return self.env.learning_reward(wrapped_state[0], action, reward, info, params, coefs)

    def step_stats(self, info, reward, params):
        return self.env.step_stats(info, reward, params)

    def training_metrics(self, sums, num_envs):
        return self.env.training_metrics(sums, num_envs)

    def token_layout(self, params):
        return self.env.token_layout(params)

    def agent_graph(self, params):
        return self.env.agent_graph(params)


THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
THREEFRY_PARITY = 0x1BD11BDA


def threefry2x32(key_words: jax.Array, x0: jax.Array, x1: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 block cipher (20 rounds; Salmon et al., SC'11) on uint32 lanes.

    Written out round by round so XLA fuses the whole hash into one elementwise
    loop: JAX's own CPU lowering loops over the rounds and streams every
    intermediate through memory, several times slower for large batches.
    """
    k0, k1 = key_words[0], key_words[1]
    schedule = (k0, k1, k0 ^ k1 ^ jnp.uint32(THREEFRY_PARITY))
    x0, x1 = x0 + schedule[0], x1 + schedule[1]
    for block in range(5):
        for rotation in THREEFRY_ROTATIONS[block % 2]:
            x0 = x0 + x1
            x1 = (x1 << jnp.uint32(rotation)) | (x1 >> jnp.uint32(32 - rotation))
            x1 = x1 ^ x0
        x0 = x0 + schedule[(block + 1) % 3]
        x1 = x1 + schedule[(block + 2) % 3] + jnp.uint32(block + 1)
    return x0, x1


def random_words(key: jax.Array, n: int) -> jax.Array:
    """`n` uniform uint32 words from `key`, one Threefry block per two words.

    For Threefry keys (JAX's default) the words equal `jax.random.bits(key, (n,))`
    with `jax_threefry_partitionable=False` (counters 0..n-1, zero-padded to an
    even length, first half paired with second half in a block): half the
    hashing of the partitionable layout and no rolled CPU loop. Other key kinds
    fall back to `jax.random.bits`.
    """
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) != "threefry2x32":
            return jax.random.bits(key, (n,), jnp.uint32)
        key_words = jax.random.key_data(key)
    else:  # a raw uint32[2] key of the default implementation
        key_words = key
    half = (n + 1) // 2
    counters = jnp.concatenate([jnp.arange(n, dtype=jnp.uint32), jnp.zeros(2 * half - n, jnp.uint32)])
    x0, x1 = threefry2x32(key_words.astype(jnp.uint32), counters[:half], counters[half:])
    return jnp.concatenate([x0, x1])[:n]


def is_int(value) -> bool:
    """True for Python/NumPy integers but not bools (config validation helper)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


# Regions whose expected demand in one step exceeds this are sampled with a
# rounded normal quantile instead of exact inversion (float32 exp(-lam) and the
# inversion loop length both degrade beyond it). No bundled scenario comes near.
POISSON_EXACT_MAX_RATE = 64.0
# A pmf below this past the mean ends the inversion search (float32 rounding
# can leave the running CDF just under a uniform close to 1).
POISSON_TAIL_PMF = 1e-8


def poisson_by_inversion(u: jax.Array, lam: jax.Array, unroll: int = 4) -> jax.Array:
    """Poisson(lam) counts from one uniform each, by sequential CDF inversion.

    One draw per count (the cheapest possible), exact for lam <=
    `POISSON_EXACT_MAX_RATE`; above it a rounded normal quantile. The count is
    the number of terms k whose CDF F(k) is still <= u, so all lanes walk the
    terms in lockstep with a scalar k and no per-lane branching; the loop ends
    when every lane's CDF passed its uniform (about max(lam) + 5 sqrt(max(lam))
    terms), `unroll` terms per round.
    """
    lam = lam.astype(jnp.float32)
    exact = lam <= POISSON_EXACT_MAX_RATE
    lam_x = jnp.where(exact, lam, 0.0)

    def below(k, pmf, cdf):
        """The lane has not found its count at term k: F(k) <= u and the pmf is not negligible."""
        tail = (k > lam_x) & (pmf < POISSON_TAIL_PMF)
        return (cdf <= u) & ~tail & exact

    def searching(carry):
        k, pmf, cdf, _ = carry
        return jnp.any(below(k, pmf, cdf))

    def next_terms(carry):
        k, pmf, cdf, count = carry
        for _ in range(unroll):
            count = count + below(k, pmf, cdf).astype(jnp.int32)
            k = k + 1.0
            pmf = pmf * lam_x / k
            cdf = cdf + pmf
        return k, pmf, cdf, count

    p0 = jnp.exp(-lam_x)
    init = (jnp.zeros((), jnp.float32), p0, p0, jnp.zeros(u.shape, jnp.int32))
    k = jax.lax.while_loop(searching, next_terms, init)[3]
    z = jax.scipy.special.ndtri(jnp.clip(u, 1e-7, 1.0 - 1e-7))
    approx = jnp.maximum(jnp.floor(lam + jnp.sqrt(lam) * z + 0.5), 0.0).astype(jnp.int32)
    return jnp.where(exact, k, approx)


def uniform_from_bits(bits: jax.Array) -> jax.Array:
    """float32 uniforms in [0, 1) from uint32 words (top 24 bits, exact)."""
    return (bits >> 8).astype(jnp.float32) * jnp.float32(2.0 ** -24)
