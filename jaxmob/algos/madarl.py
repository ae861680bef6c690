"""MADARL: multi-agent PPO with local attention in the actor and global
attention in the critic, for environments whose observations are made of
per-cell tokens (the taxi env: a taxi's own cell and its 6 neighbours).

Centralised training, decentralised execution: the actor sees only its own
observation, and the critic also sees the global state. The layout comes from
the environment (`Agents.tokens`):
* the observation is `local_tokens x token_dim` floats (own cell first) and
  then free features;
* the global state is `global_tokens x token_dim` floats (one token per cell)
  and then free features.

Actor: its own token queries all local tokens (scaled dot-product, one head);
the attended context joins the observation in an MLP that gives logits.
Critic: the agent's observation embedding queries every cell token of the
global state. Context, observation and the state's free features go into an
MLP that gives the value. `attention` ablates either: 'none' | 'local' |
'global' | 'both'. Without global attention the critic reads the whole state
vector, as MAPPO's does. Parameters are shared by all agents (one group).
"""
from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..core.algorithm import Algorithm
from ..core.errors import check_fields
from ..core.task import option
from ..nets import MLP
from ..nets.mlp import apply_shared_input
from .ppo import PPO

ATTENTION = ("none", "local", "global", "both")


class Attend(nn.Module):
    """One-head scaled dot-product attention of query vectors over tokens.

    `query (..., Dq)` with `tokens (..., T, D)`: each query has its own tokens.
    With `shared=True`, `query (..., N, Dq)` and `tokens (..., T, D)`: N queries
    read one token set, whose keys and values are computed once (the global
    critic: thousands of taxis over 250 cells)."""

    dim: int
    shared: bool = False

    @nn.compact
    def __call__(self, query, tokens):
        q = nn.Dense(self.dim, name="q")(query)
        k = nn.Dense(self.dim, name="k")(tokens)
        v = nn.Dense(self.dim, name="v")(tokens)
        if self.shared:
            w = jax.nn.softmax(jnp.einsum("...nd,...td->...nt", q, k) / jnp.sqrt(self.dim), axis=-1)
            return jnp.einsum("...nt,...td->...nd", w, v)
        w = jax.nn.softmax((q[..., None, :] * k).sum(-1) / jnp.sqrt(self.dim), axis=-1)
        return (w[..., None] * v).sum(-2)


@dataclass(frozen=True)
class MadarlPolicy:
    num_agents: int
    num_actions: int
    local_tokens: int
    global_tokens: int
    token_dim: int
    hidden: tuple = (64, 64)
    attention_dim: int = 32
    attention: str = "both"

    def __post_init__(self):
        if self.attention not in ATTENTION:
            raise ValueError(f"MadarlPolicy.attention must be one of {ATTENTION}, got {self.attention!r}")

    @property
    def local(self) -> bool:
        return self.attention in ("local", "both")

    @property
    def globl(self) -> bool:
        return self.attention in ("global", "both")

    @property
    def agent_symmetric(self) -> bool:
        """One network for all agents, no agent id: an agent's outputs depend on its observation
        (and the global state) alone, so the PPO core may run it per distinct observation."""
        return True

    def groups(self):
        return jnp.zeros((self.num_agents,), jnp.int32)

    def _nets(self):
        return (MLP(self.hidden, self.num_actions, out_scale=0.01), MLP(self.hidden, 1, out_scale=1.0),
                Attend(self.attention_dim), Attend(self.attention_dim, shared=True))

    def _local_tokens(self, obs):
        n = self.local_tokens * self.token_dim
        return obs[..., :n].reshape(obs.shape[:-1] + (self.local_tokens, self.token_dim))

    def _global_split(self, state):
        n = self.global_tokens * self.token_dim
        cells = state[..., :n].reshape(state.shape[:-1] + (self.global_tokens, self.token_dim))
        return cells, state[..., n:]

    def init(self, key, obs_dim: int, state_dim: int):
        actor, critic, attend, attend_all = self._nets()
        k_a, k_c, k_la, k_ga = jax.random.split(key, 4)
        d = self.attention_dim
        params = {"actor": actor.init(k_a, jnp.zeros((obs_dim + (d if self.local else 0),)))}
        if self.local:
            params["local_attention"] = attend.init(k_la, jnp.zeros((self.token_dim,)),
                                                    jnp.zeros((self.local_tokens, self.token_dim)))
        if self.globl:
            extra = state_dim - self.global_tokens * self.token_dim
            params["global_attention"] = attend_all.init(k_ga, jnp.zeros((1, obs_dim)),
                                                         jnp.zeros((self.global_tokens, self.token_dim)))
            params["critic"] = critic.init(k_c, jnp.zeros((obs_dim + d + extra,)))
        else:
            params["critic"] = critic.init(k_c, jnp.zeros((state_dim + obs_dim,)))
        return params

    def apply(self, params, groups, obs, state):
        """obs (..., N, O), state (..., S) -> logits (..., N, A), values (..., N)."""
        actor, critic, attend, attend_all = self._nets()
        x = obs
        if self.local:
            tokens = self._local_tokens(obs)
            context = attend.apply(params["local_attention"], tokens[..., 0, :], tokens)
            x = jnp.concatenate([obs, context], -1)
        logits = actor.apply(params["actor"], x)
        if self.globl:
            cells, extra = self._global_split(state)  # (..., C, D), (..., E)
            context = attend_all.apply(params["global_attention"], obs, cells)
            extra = jnp.broadcast_to(extra[..., None, :], obs.shape[:-1] + extra.shape[-1:])
            values = critic.apply(params["critic"], jnp.concatenate([obs, context, extra], -1))[..., 0]
        else:
            values = apply_shared_input(critic, params["critic"], state, obs)[..., 0]
        return logits, values


@dataclass(frozen=True)
class MadarlOptions:
    """MADARL's own options (`--alg madarl`)."""

    attention: str = option("both", "attention in the actor (local: own cell vs its neighbours) and critic "
                                    "(global: over every cell): none | local | global | both")


def _validate(config) -> None:
    check_fields([(config.attention in ATTENTION, "attention",
                   f"must be one of {', '.join(ATTENTION)}, got {config.attention!r}")])


def _make_policy(env, env_params, config):
    return MadarlPolicy(num_agents=env.num_agents(env_params), num_actions=env.num_actions(env_params),
                        hidden=tuple(config.hidden), attention=config.attention, **env.agents(env_params).tokens)


ALGORITHM = Algorithm(name="madarl", summary="PPO with local attention in the actor and global attention in the critic "
                      "(envs with per-cell token observations, e.g. taxi)", core=PPO, make_policy=_make_policy,
                      Options=MadarlOptions, needs=("tokens",), validate=_validate)
