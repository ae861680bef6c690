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
from ..core.errors import check_fields
from ..core.task import option
from ..nets import MLP
from ..nets.mlp import apply_shared_input
from .ppo import PPO

ALGORITHMS = ("share_all", "ippo", "mappo", "no_share")
CRITICS = ("local", "central")


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
    critic: '' the scheme's own (above); 'central' replaces its value with one critic on
            the global state plus a learned agent-id embedding (MAPPO's; the actor is
            unchanged), 'local' gives MAPPO a shared critic on the local observation.
            So a comparison of sharing schemes can hold the critic fixed.
    """

    scheme: str
    num_agents: int
    num_actions: int
    hidden: tuple = (64, 64)
    id_dim: int = 8
    critic: str = ""

    def __post_init__(self):
        if self.scheme not in ALGORITHMS:
            raise ValueError(f"unknown sharing scheme {self.scheme!r}; choose from {ALGORITHMS}")
        if self.critic not in ("",) + CRITICS:
            raise ValueError(f"SharingPolicy: critic must be one of {CRITICS} (or '' for the scheme's own), got {self.critic!r}")

    @property
    def central(self) -> bool:
        return (self.critic or ("central" if self.scheme == "mappo" else "local")) == "central"

    @property
    def num_groups(self) -> int:
        return self.num_agents if self.scheme == "no_share" else 1

    def groups(self):
        """The agent -> group assignment (data, not structure)."""
        return jnp.arange(self.num_agents, dtype=jnp.int32) if self.scheme == "no_share" else jnp.zeros(self.num_agents, jnp.int32)

    def _nets(self):
        if self.scheme == "share_all" and not self.central:
            return MLP(self.hidden, self.num_actions + 1, out_scale=0.01), None
        return MLP(self.hidden, self.num_actions, out_scale=0.01), MLP(self.hidden, 1, out_scale=1.0)

    def init(self, key, obs_dim: int, state_dim: int):
        actor, critic = self._nets()
        k_a, k_c, k_id = jax.random.split(key, 3)
        actor_id = self.id_dim if self.scheme == "mappo" else 0
        params = {"actor": stacked_init(actor, k_a, self.num_groups, jnp.zeros((obs_dim + actor_id,)))}
        if self.central:  # one critic for all agents
            params["critic"] = stacked_init(critic, k_c, 1, jnp.zeros((state_dim + self.id_dim,)))
        elif critic is not None:
            params["critic"] = stacked_init(critic, k_c, self.num_groups, jnp.zeros((obs_dim,)))
        if actor_id or self.central:
            params["agent_id"] = 0.1 * jax.random.normal(k_id, (self.num_agents, self.id_dim))
        return params

    def apply(self, params, groups, obs, state):
        """obs (..., R, O), state (..., S) -> logits (..., R, A), values (..., R)."""
        actor, critic = self._nets()
        if self.scheme == "share_all" and not self.central:
            out = grouped_apply(actor, params["actor"], groups, obs)
            return out[..., :-1], out[..., -1]
        ids = (jnp.broadcast_to(params["agent_id"], obs.shape[:-1] + params["agent_id"].shape[-1:])
               if "agent_id" in params else None)
        actor_in = jnp.concatenate([obs, ids], -1) if self.scheme == "mappo" else obs
        logits = grouped_apply(actor, params["actor"], groups, actor_in)
        if self.central:
            critic_params = jax.tree.map(lambda w: w[0], params["critic"])
            return logits, apply_shared_input(critic, critic_params, state, ids)[..., 0]
        return logits, grouped_apply(critic, params["critic"], groups, obs)[..., 0]


@dataclass(frozen=True)
class SharingOptions:
    """The sharing schemes' own option (`--alg share_all | ippo | mappo | no_share`)."""

    critic: str = option("", "the value function: '' the scheme's own (MAPPO central, the others local) | central "
                             "(one critic on the global state + agent-id embedding, as MAPPO) | local (on the "
                             "agent's observation): holds the critic fixed when comparing sharing schemes")


def _validate(config) -> None:
    check_fields([(config.critic in ("",) + CRITICS, "critic",
                   f"must be one of {', '.join(CRITICS)} (or empty for the scheme's own), got {config.critic!r}")])


def _sharing(scheme: str, summary: str) -> Algorithm:
    def make_policy(env, env_params, config):
        return SharingPolicy(scheme, env.num_agents(env_params), env.num_actions(env_params), tuple(config.hidden),
                             critic=config.critic)

    return Algorithm(name=scheme, summary=summary, core=PPO, make_policy=make_policy, Options=SharingOptions,
                     validate=_validate)


SHARE_ALL = _sharing("share_all", "one network for every agent (shared torso, logits and value), no agent id")
IPPO = _sharing("ippo", "shared actor, shared critic on each agent's local observation")
MAPPO = _sharing("mappo", "shared actor with a learned agent-id embedding, central critic on the global state")
NO_SHARE = _sharing("no_share", "one actor and one critic per agent")
