"""Parameter-sharing schemes as data: one actor-critic, many ways of sharing it.

Parameters of each network are stacked along a leading *group* axis and an
integer array maps agent -> group. Share-All, IPPO and MAPPO have one group,
No-Share has one group per agent; HAG-PS (see `hagps.py`) moves agents between
groups by rewriting the assignment, never by changing shapes.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ..core.algorithm import Algorithm
from ..nets import MLP
from ..nets.mlp import apply_shared_input
from .ppo import PPO

ALGORITHMS = ("share_all", "ippo", "mappo", "no_share")


def stacked_init(module, key, num_groups: int, dummy):
    """Initialise `num_groups` independent parameter sets stacked on axis 0."""
    return jax.vmap(lambda k: module.init(k, dummy))(jax.random.split(key, num_groups))


def grouped_apply(module, params, groups, x):
    """Apply per-agent parameters: agent r uses slice `groups[r]` of the stack.

    x: (..., R, D). With a single group the slice is broadcast (one matmul);
    otherwise each agent's weights are gathered and applied in a batched matmul.
    """
    num_groups = jax.tree.leaves(params)[0].shape[0]
    if num_groups == 1:
        return module.apply(jax.tree.map(lambda w: w[0], params), x)
    per_agent = jax.tree.map(lambda w: w[groups], params)
    return jax.vmap(module.apply, in_axes=(0, -2), out_axes=-2)(per_agent, x)


@dataclass(frozen=True)
class SharingPolicy:
    """An actor-critic under one sharing scheme.

    scheme: 'share_all' one network (shared torso, logits + value heads), no agent id;
            'ippo'      shared actor, shared critic on the agent's local observation;
            'mappo'     shared actor with a learned agent-id embedding, centralised
                        critic on the global state plus the agent's embedding;
            'no_share'  one actor and one critic per agent.
    """

    scheme: str
    num_agents: int
    num_actions: int
    hidden: tuple = (64, 64)
    id_dim: int = 8

    def __post_init__(self):
        if self.scheme not in ALGORITHMS:
            raise ValueError(f"unknown sharing scheme {self.scheme!r}; choose from {ALGORITHMS}")

    @property
    def num_groups(self) -> int:
        return self.num_agents if self.scheme == "no_share" else 1

    def groups(self):
        """The agent -> group assignment (data, not structure)."""
        return jnp.arange(self.num_agents, dtype=jnp.int32) if self.scheme == "no_share" else jnp.zeros(self.num_agents, jnp.int32)

    def _nets(self):
        if self.scheme == "share_all":
            return MLP(self.hidden, self.num_actions + 1, out_scale=0.01), None
        return MLP(self.hidden, self.num_actions, out_scale=0.01), MLP(self.hidden, 1, out_scale=1.0)

    def init(self, key, obs_dim: int, state_dim: int):
        actor, critic = self._nets()
        k_a, k_c, k_id = jax.random.split(key, 3)
        id_dim = self.id_dim if self.scheme == "mappo" else 0
        params = {"actor": stacked_init(actor, k_a, self.num_groups, jnp.zeros((obs_dim + id_dim,)))}
        if critic is not None:
            c_in = state_dim + id_dim if self.scheme == "mappo" else obs_dim
            params["critic"] = stacked_init(critic, k_c, self.num_groups, jnp.zeros((c_in,)))
        if id_dim:
            params["agent_id"] = 0.1 * jax.random.normal(k_id, (self.num_agents, id_dim))
        return params

    def apply(self, params, groups, obs, state):
        """obs (..., R, O), state (..., S) -> logits (..., R, A), values (..., R)."""
        actor, critic = self._nets()
        if self.scheme == "share_all":
            out = grouped_apply(actor, params["actor"], groups, obs)
            return out[..., :-1], out[..., -1]
        if self.scheme == "mappo":  # one actor and one critic (a single group)
            ids = jnp.broadcast_to(params["agent_id"], obs.shape[:-1] + params["agent_id"].shape[-1:])
            logits = grouped_apply(actor, params["actor"], groups, jnp.concatenate([obs, ids], -1))
            critic_params = jax.tree.map(lambda w: w[0], params["critic"])
            return logits, apply_shared_input(critic, critic_params, state, ids)[..., 0]
        logits = grouped_apply(actor, params["actor"], groups, obs)
        values = grouped_apply(critic, params["critic"], groups, obs)[..., 0]
        return logits, values


def _sharing(scheme: str, summary: str) -> Algorithm:
    def make_policy(env, env_params, config):
        return SharingPolicy(scheme, env.num_agents(env_params), env.num_actions(env_params), tuple(config.hidden))

    return Algorithm(name=scheme, summary=summary, core=PPO, make_policy=make_policy)


SHARE_ALL = _sharing("share_all", "one network for every agent (shared torso, logits and value), no agent id")
IPPO = _sharing("ippo", "shared actor, shared critic on each agent's local observation")
MAPPO = _sharing("mappo", "shared actor with a learned agent-id embedding, central critic on the global state")
NO_SHARE = _sharing("no_share", "one actor and one critic per agent")
