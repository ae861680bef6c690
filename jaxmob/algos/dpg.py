"""The one deterministic-policy-gradient core: DDPG and MADDPG as data.

Beside the PPO core, for continuous actions (one number per agent in
[-1, 1]): a shared actor mu(o_i) (agents tell themselves apart by their
observation) with Gaussian exploration noise. For discrete actions
(`ddpg_discrete`, the TDEVR paper's DDPG baseline) the actor's output is a
relaxed one-hot, the softmax of its logits: the critic Q(o_i, p_i) reads it,
the actor ascends Q through it, the env gets a draw from it (mixed with the
uniform by the exploration rate) and the replay keeps the one-hot of the action
taken. Its critic only ever sees one-hots, so the actor's softmax is driven to a
corner: agents that share an observation (idle taxis in one cell) all make the
same choice. `ddpg_dist` makes the distribution itself the action: agents that
share an observation (`Environment.distinct_observations`) draw from one explored
distribution p, and a mean-field critic Q(o_i, a_i, p) reads each agent's own
action beside its group's p, so it learns both which move pays and what crowding
a group into it costs; the actor ascends sum_a p_a Q(o_i, a, p). `sac_discrete` is the
soft actor-critic over discrete actions: the critic reads only o_i and gives every move's
Q(o_i, a) at once (learnt on the moves taken); the actor maximises sum_a pi_a Q(o_i, a) +
alpha H(pi), and the target is the next state's sum_a pi_a Q'(o', a) + alpha H(pi(o')), so the
best policy is softmax(Q / alpha): a spread, not a corner, and every agent draws from pi. As SAC
is published (`as_published`, the default) the critics are twins whose minimum per move the
actor and the target read (clipped double-Q: one critic's overestimate is not what the actor
chases) and the target's pi is the online policy's; without it, one critic and the target actor. A replay buffer of fixed size
living in the runner state (so a chunk of updates is one `lax.scan` and a
checkpoint holds the buffer: resuming is exact), target networks moved by
Polyak averaging, and a critic that is

* 'independent' (DDPG per agent, parameters shared): Q(o_i, a_i);
* 'central' (MADDPG): Q_i(s, a_1..a_R, o_i) on the global state and every
  agent's action, so each agent's critic sees the others' choices;
* 'graph' (MARL-GCN, `marl_gcn.py`): a graph-attention critic with
  heterogeneous pooling, for agents that share one team reward.

The actor of agent i ascends Q_i with its own action replaced by mu(o_i) (the
others' actions as stored); under the graph critic every learning agent's
action is replaced at once (the team's reward is shared, so the mean Q of the
joint policy is what the actors ascend). A policy with an `aux_loss` (MARL-GCN's
graph contrastive loss) has it added to the critic loss. One update = `rollout_steps` steps of `num_envs`
environments into the buffer, then `gradient_steps` minibatch steps of both
losses once the buffer holds `batch_size` transitions. The learning rates,
discount, Polyak rate and exploration noise are traced (`Hyper`), so a sweep
vmaps over them like PPO's.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from ..core.env import runs_per_distinct_observation, select_tree, shares_observations
from ..nets import MLP
from ..core.algorithm import Algorithm, LearnerCore
from ..core.errors import check_fields
from ..core.task import option
from .policies import stacked_init
from .ppo import Hyper, RunnerState, make_optimizer, set_lr

@dataclass(frozen=True)
class DPGConfig:
    """Static (shape-determining) settings of the off-policy core."""

    num_envs: int = 8
    rollout_steps: int = 20
    buffer_size: int = 4096
    batch_size: int = 256
    gradient_steps: int = 20
    max_grad_norm: float = 1.0
    reward_scale: float = 1.0
    # exploration schedule: the noise falls linearly to `noise_final` x its start over `noise_updates`
    # updates, then stays there (1.0: constant noise)
    noise_final: float = 1.0
    noise_updates: int = 1
    # a policy whose networks read only the observation (`agent_symmetric`) on an env whose agents share
    # observations runs once per distinct observation, and the replay keeps the distinct rows
    distinct_observations: bool = True

    def __post_init__(self):
        if self.batch_size > self.buffer_size:
            raise ValueError(f"DPGConfig: batch_size ({self.batch_size}) exceeds buffer_size ({self.buffer_size})")


@dataclass(frozen=True)
class DPGPolicy:
    """Actor and critic networks of one critic kind: independent (DDPG) or central (MADDPG).
    `num_actions` > 0: discrete actions through a relaxed one-hot (independent critic only)."""

    critic: str
    num_agents: int
    hidden: tuple = (64, 64)
    noise: float = 0.2  # the sampled (behaviour) policy's exploration in evaluation: Gaussian std, or uniform share
    num_actions: int = 0
    # discrete: the action is the distribution that the agents sharing an observation draw from
    shared: bool = False
    # discrete: soft actor-critic, the critic Q(o) gives every move's value, the agents draw from pi
    soft: bool = False
    # soft: SAC as published, twin critics (clipped double-Q) and the target's next action from the online policy
    twin: bool = False

    def __post_init__(self):
        if self.critic not in ("independent", "central"):
            raise ValueError(f"unknown critic {self.critic!r}; choose independent or central")
        if self.num_actions and self.critic != "independent":
            raise ValueError("discrete actions need the independent critic: a joint one-hot of every agent is too wide")
        if (self.shared or self.soft) and not self.num_actions:
            raise ValueError("a shared distribution or a soft actor needs discrete actions")
        if self.shared and self.soft:
            raise ValueError("choose a shared distribution or a soft actor, not both")
        if self.twin and not self.soft:
            raise ValueError("twin critics belong to the soft actor-critic")

    @property
    def action_width(self) -> int:
        """Numbers per agent's action from the actor: 1, or the one-hot's width."""
        return self.num_actions or 1

    @property
    def agent_symmetric(self) -> bool:
        """Whether actor and critic read an agent's observation alone (the soft actor-critic), so
        agents that share an observation share every network output."""
        return self.soft

    @property
    def stored_width(self) -> int:
        """Numbers per agent's action in the replay and the critic: the action, or with a shared
        distribution the agent's one-hot and its group's distribution."""
        return 2 * self.num_actions if self.shared else self.action_width

    def _nets(self):
        return (MLP(self.hidden, self.action_width, out_scale=0.01),
                MLP(self.hidden, self.num_actions if self.soft else 1, out_scale=1.0))

    def critic_input(self, obs, gstate, actions):
        """Per-agent critic inputs (..., R, D) for actions (..., R), one-hots (..., R, A) or joint
        actions (..., R, R); the soft critic reads the observation alone."""
        if self.soft:
            return obs
        if self.num_actions:
            return jnp.concatenate([obs, actions], -1)
        if self.critic == "independent":
            own = actions if actions.ndim == obs.ndim - 1 else jnp.diagonal(actions, axis1=-2, axis2=-1)
            return jnp.concatenate([obs, own[..., None]], -1)
        joint = actions if actions.ndim == obs.ndim else jnp.broadcast_to(actions[..., None, :], obs.shape[:-1] + actions.shape[-1:])
        state = jnp.broadcast_to(gstate[..., None, :], obs.shape[:-1] + gstate.shape[-1:])
        return jnp.concatenate([state, joint, obs], -1)

    def init(self, key, obs_dim: int, state_dim: int):
        actor, critic = self._nets()
        k_a, k_c = jax.random.split(key)
        R = self.num_agents
        c_in = (obs_dim + (0 if self.soft else self.stored_width) if self.critic == "independent"
                else state_dim + R + obs_dim)
        critic_params = (stacked_init(critic, k_c, 2, jnp.zeros((c_in,))) if self.twin
                         else critic.init(k_c, jnp.zeros((c_in,))))
        return {"actor": actor.init(k_a, jnp.zeros((obs_dim,))), "critic": critic_params}

    def groups(self):
        return jnp.zeros(self.num_agents, jnp.int32)

    def action(self, params, obs):
        """mu(o): (..., R) actions in [-1, 1], or (..., R, A) action probabilities (the relaxed one-hot)."""
        actor, _ = self._nets()
        out = actor.apply(params["actor"], obs)
        return jax.nn.softmax(out, -1) if self.num_actions else jnp.tanh(out[..., 0])

    def _critic(self, params, x):
        """The critic's outputs; twin critics' stacked on a leading axis of 2."""
        _, critic = self._nets()
        if self.twin:
            return jax.vmap(critic.apply, in_axes=(0, None))(params["critic"], x)
        return critic.apply(params["critic"], x)

    def q(self, params, obs, gstate, actions, index=None):
        """Q of `actions` ((2, ...) with twin critics); with `index` (soft critic only) `obs` holds
        distinct observations, the critics run once per row and each agent reads its row's Q of
        every move."""
        out = self._critic(params, self.critic_input(obs, gstate, actions))
        if index is not None:
            row = index[..., None]
            out = jnp.take_along_axis(out, row[None] if self.twin else row, axis=-2)
        return (out * actions).sum(-1) if self.soft else out[..., 0]  # soft: the one-hot picks its move's Q

    def entropy(self, params, obs):
        """H(pi(o)) per agent, from the actor's logits (no log of a rounded-off zero)."""
        actor, _ = self._nets()
        logp = jax.nn.log_softmax(actor.apply(params["actor"], obs), -1)
        return -(jnp.exp(logp) * logp).sum(-1)

    def value(self, params, obs, gstate, actions):
        """What the critic says `actions` (from the actor) are worth: Q itself, or with a shared
        distribution p the mean-field expectation sum_a p_a Q(o, a, p) over the agent's own draw,
        or with a soft critic sum_a p_a Q(o, a) (twin critics: their minimum per move)."""
        if self.soft:
            out = self._critic(params, obs)
            return (actions * (out.min(0) if self.twin else out)).sum(-1)
        if not self.shared:
            return self.q(params, obs, gstate, actions)
        A = self.num_actions
        own = jnp.broadcast_to(jnp.eye(A), actions.shape[:-1] + (A, A))
        group = jnp.broadcast_to(actions[..., None, :], own.shape)
        q_each = self.q(params, jnp.broadcast_to(obs[..., None, :], own.shape[:-1] + obs.shape[-1:]), gstate,
                        jnp.concatenate([own, group], -1))  # (..., R, A): each own move beside p
        return (actions * q_each).sum(-1)

    def act(self, params, groups, obs, gstate, key, sample: bool, noise=None, index=None):
        """The deployed policy (mu, or its most likely action), or with `sample` the behaviour
        policy (mu + Gaussian noise, or a draw from mu mixed with `noise` of the uniform). With
        `index`, `obs` holds distinct observations and each agent acts on its row."""
        a = self.action(params, obs)
        if index is not None:
            a = jnp.take_along_axis(a, index[..., None], axis=-2)
        noise = self.noise if noise is None else noise
        if self.shared or self.soft:  # the distribution is the policy: the deployed one draws from it as it is
            return jax.random.categorical(key, jnp.log(a)) if sample else jnp.argmax(a, -1)
        if self.num_actions:
            mixed = (1.0 - noise) * a + noise / self.num_actions
            return jax.random.categorical(key, jnp.log(mixed)) if sample else jnp.argmax(a, -1)
        return jnp.clip(a + noise * jax.random.normal(key, a.shape), -1.0, 1.0) if sample else a

    def explore_shared(self, params, table, index, key, noise):
        """Training's behaviour of the shared variant: each distinct observation's distribution
        mu(o) mixed with `noise` of a random one (Dirichlet(1), so exploration covers the simplex
        around mu), and every agent a draw from its row's. Returns (actions (..., R), each agent's
        one-hot beside its row's distribution (..., R, 2A)): what the replay keeps as the action."""
        k_mix, k_draw = jax.random.split(key)
        mu = self.action(params, table)  # (..., U, A)
        other = jax.random.dirichlet(k_mix, jnp.ones(self.num_actions), mu.shape[:-1])
        p = jnp.take_along_axis((1.0 - noise) * mu + noise * other, index[..., None], axis=-2)
        action = jax.random.categorical(k_draw, jnp.log(p))
        return action, jnp.concatenate([jax.nn.one_hot(action, self.num_actions), p], -1)


@struct.dataclass
class Replay:
    obs: jax.Array  # (N, R, O), or with `index` the distinct observations (N, U, O)
    gstate: jax.Array  # (N, S)
    action: jax.Array  # (N, R)
    reward: jax.Array  # (N, R)
    next_obs: jax.Array
    next_gstate: jax.Array
    done: jax.Array  # (N,)
    insert: jax.Array  # () next slot
    size: jax.Array  # () filled slots
    index: Any = None  # (N, R): each agent's row of `obs` where the replay keeps distinct observations
    next_index: Any = None

    @classmethod
    def empty(cls, n: int, obs_shape, state_dim: int, action_width: int = 1, num_agents: int = 0):
        """`num_agents` > 0: `obs_shape` is the distinct observations' (U, O), and each of the
        agents' rows is kept beside them (10,000 taxis on 250 cells: 501 rows, not 10,000)."""
        z = lambda *s: jnp.zeros((n,) + tuple(s), jnp.float32)  # noqa: E731
        rows, O = obs_shape
        R = num_agents or rows
        action = z(R) if action_width == 1 else z(R, action_width)
        index = jnp.zeros((n, R), jnp.int32) if num_agents else None
        return cls(z(rows, O), z(state_dim), action, z(R), z(rows, O), z(state_dim), jnp.zeros((n,), bool),
                   jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), index, index)

    def add(self, batch: dict) -> "Replay":
        """Append a batch of B transitions, overwriting the oldest when full."""
        n = self.done.shape[0]
        B = batch["done"].shape[0]
        slots = (self.insert + jnp.arange(B)) % n
        fields = {k: getattr(self, k).at[slots].set(v.astype(getattr(self, k).dtype)) for k, v in batch.items()}
        return self.replace(**fields, insert=(self.insert + B) % n, size=jnp.minimum(self.size + B, n))

    def sample(self, key, batch_size: int) -> dict:
        idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(self.size, 1))
        kept = ("obs", "gstate", "action", "reward", "next_obs", "next_gstate", "done", "index", "next_index")
        return {k: getattr(self, k)[idx] for k in kept if getattr(self, k) is not None}


@struct.dataclass
class DPGExtra:
    target: Any
    replay: Replay


def annealed(noise, final: float, update, updates: int):
    """The exploration noise at `update`: `noise` falling linearly to `final` x `noise` at update
    `updates`, then constant (fewer random actions once the critic has learned what they do)."""
    done = jnp.minimum(update / max(updates, 1), 1.0)
    return noise * (1.0 - (1.0 - final) * done)


def dpg_hyper(lr=1e-3, gamma=0.99, tau=0.01, noise=0.2, critic_lr=None, **kw) -> Hyper:
    """`Hyper` of the off-policy core: actor lr, critic lr, discount, Polyak rate, noise (all traced)."""
    return Hyper.make(lr=lr, gamma=gamma, tau=tau, noise=noise, critic_lr=critic_lr if critic_lr is not None else lr, **kw)


def make_train(env, env_params, policy: DPGPolicy, config: DPGConfig):
    """Return `(init(key, hyper), update_chunk(runner, num_updates))`, as `ppo.make_train` does."""
    spec = env.action_spec(env_params)
    num_actions = getattr(policy, "num_actions", 0)  # 0: continuous (policies of continuous actions need not say)
    if (spec.num_values or 0) != num_actions:
        kind = f"{spec.num_values} discrete" if spec.num_values else "continuous"
        raise TypeError(f"the DPG policy expects {num_actions or 'continuous'} actions; "
                        f"{type(env).__name__} has {kind} ones")
    # what the replay keeps of an action the env got: itself, or its one-hot
    replay_action = (lambda a: jax.nn.one_hot(a, num_actions)) if num_actions else (lambda a: a)  # noqa: E731
    B, T = config.num_envs, config.rollout_steps
    actor_opt, critic_opt = make_optimizer(config.max_grad_norm, eps=1e-8), make_optimizer(config.max_grad_norm, eps=1e-8)
    reset = jax.vmap(env.reset, in_axes=(0, None))
    global_state = jax.vmap(env.global_state, in_axes=(0, None))
    agent_mask = env.agents(env_params).mask.astype(jnp.float32)
    n_agents = jnp.maximum(agent_mask.sum(), 1.0)
    shared = getattr(policy, "shared", False)
    rows = config.distinct_observations and runs_per_distinct_observation(policy, env)  # replay keeps distinct rows

    def distinct(env_state, obs):
        """(rows, each agent's row): the env's distinct observations, or every agent its own."""
        if shares_observations(env):
            return jax.vmap(env.distinct_observations, in_axes=(0, None))(env_state, env_params)
        return obs, jnp.broadcast_to(jnp.arange(obs.shape[-2]), obs.shape[:-1])

    def init(key, hyper: Hyper) -> RunnerState:
        k_env, k_pol, k_run = jax.random.split(key, 3)
        obs, env_state = reset(jax.random.split(k_env, B), env_params)
        gstate = global_state(env_state, env_params)
        params = policy.init(k_pol, obs.shape[-1], gstate.shape[-1])
        opt_state = {"actor": set_lr(actor_opt.init(params["actor"]), hyper.lr),
                     "critic": set_lr(critic_opt.init(params["critic"]), hyper.algo["critic_lr"])}
        table = distinct(env_state, obs)[0] if rows else obs
        replay = Replay.empty(config.buffer_size, table.shape[1:], gstate.shape[-1],
                              getattr(policy, "stored_width", num_actions or 1), obs.shape[1] if rows else 0)
        return RunnerState(params=params, opt_state=opt_state, env_state=env_state, obs=obs, key=k_run,
                           update=jnp.zeros((), jnp.int32), groups=policy.groups(), hyper=hyper,
                           extra=DPGExtra(target=params, replay=replay))

    def env_step(carry, _):
        runner, reset_state, reset_obs = carry
        key, k_act, k_env = jax.random.split(runner.key, 3)
        gstate = global_state(runner.env_state, env_params)
        noise = annealed(runner.hyper.algo["noise"], config.noise_final, runner.update, config.noise_updates)
        if shared:
            table, index = distinct(runner.env_state, runner.obs)
            action, stored = policy.explore_shared(runner.params, table, index, k_act, noise)
        elif rows:
            table, index = distinct(runner.env_state, runner.obs)
            action = policy.act(runner.params, runner.groups, table, gstate, k_act, True, noise, index=index)
            stored = replay_action(action)
        else:
            action = policy.act(runner.params, runner.groups, runner.obs, gstate, k_act, True, noise)
            stored = replay_action(action)
        next_obs, reached, reward, done, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_env, B), runner.env_state, action, env_params)
        learn = jax.vmap(env.learning_reward, in_axes=(0, 0, 0, 0, None, None))(
            runner.env_state, action, reward, info, env_params, runner.hyper.shaping) * config.reward_scale
        seen = dict(obs=runner.obs, next_obs=next_obs)
        if rows:  # the distinct rows before and after the step, and each agent's row in them
            next_table, next_index = distinct(reached, next_obs)
            seen = dict(obs=table, index=index, next_obs=next_table, next_index=next_index)
        replay = runner.extra.replay.add(dict(**seen, gstate=gstate, action=stored, reward=learn,
                                              next_gstate=global_state(reached, env_params), done=done))
        # finished episodes continue from the reset drawn for this update (as `step_auto_reset`)
        obs, env_state = jax.vmap(select_tree)(done, (reset_obs, reset_state), (next_obs, reached))
        stats = env.step_stats(info, reward, env_params)
        runner = runner.replace(key=key, env_state=env_state, obs=obs, extra=runner.extra.replace(replay=replay))
        return (runner, reset_state, reset_obs), stats

    aux_loss = getattr(policy, "aux_loss", None)
    value = getattr(policy, "value", policy.q)  # what Q says the actor's actions are worth (a policy may average it)
    soft = getattr(policy, "soft", False)
    twin = getattr(policy, "twin", False)

    def bonus(params, obs, hyper):
        """The soft actor's entropy bonus alpha H(pi(o)) per agent; 0 for the others."""
        return hyper.algo["entropy"] * policy.entropy(params, obs) if soft else 0.0

    def agents_of(x, index):
        """Each agent's entry of a per-row quantity (N, U), or the quantity itself without rows."""
        return x if index is None else jnp.take_along_axis(x, index, axis=-1)

    def weights(batch):
        """The agent mask, or with rows how many (masked) agents read each row: a sum over agents
        of a per-row quantity is its weighted sum over rows."""
        if not rows:
            return agent_mask
        return jax.vmap(lambda idx: jnp.zeros(batch["obs"].shape[1]).at[idx].add(agent_mask))(batch["index"])

    def losses(params, target, batch, hyper, key):
        # the next action from the target actor (DDPG), or as SAC is published from the online policy
        behind = {**target, "actor": params["actor"]} if twin else target
        next_a = policy.action(behind, batch["next_obs"])
        q_next = value(behind, batch["next_obs"], batch["next_gstate"], next_a) + bonus(behind, batch["next_obs"], hyper)
        q_next = agents_of(q_next, batch.get("next_index"))
        not_done = 1.0 - batch["done"].astype(jnp.float32)[:, None]
        y = jax.lax.stop_gradient(batch["reward"] + hyper.gamma * not_done * q_next)
        q = (policy.q(params, batch["obs"], batch["gstate"], batch["action"], index=batch["index"]) if rows
             else policy.q(params, batch["obs"], batch["gstate"], batch["action"]))
        critic_loss = (((q - y) ** 2) * agent_mask).sum() / (n_agents * y.shape[0])  # twin: both critics' errors
        if aux_loss is not None:
            critic_loss = critic_loss + aux_loss(params["critic"], batch, key)
        return critic_loss, q.mean(0) if twin else q

    def actor_loss(actor_params, params, batch, hyper):
        full = {**params, "actor": actor_params}
        mine = policy.action(full, batch["obs"])  # (N, R)
        if policy.critic == "central":  # agent i's own action replaced, the others' as stored
            R = mine.shape[-1]
            eye = jnp.eye(R, dtype=bool)
            actions = jnp.where(eye, mine[:, None, :], batch["action"][:, None, :])  # (N, R, R): row i for agent i
        elif policy.critic == "graph":  # the learners' joint action from the policy, the others' as stored
            actions = jnp.where(agent_mask > 0, mine, batch["action"])
        else:
            actions = mine
        q = value(full, batch["obs"], batch["gstate"], actions) + bonus(full, batch["obs"], hyper)
        return -((q * weights(batch)).sum() / (n_agents * q.shape[0]))

    def gradient_step(carry, key):
        params, opt_state, target, replay, hyper = carry
        # a policy with an auxiliary loss splits the key for its draws; the others sample as they always did
        k_batch, k_aux = jax.random.split(key) if aux_loss is not None else (key, key)
        batch = replay.sample(k_batch, config.batch_size)
        (c_loss, q), c_grads = jax.value_and_grad(lambda c: losses({**params, "critic": c}, target, batch, hyper, k_aux),
                                                  has_aux=True)(params["critic"])
        c_updates, c_state = critic_opt.update(c_grads, opt_state["critic"], params["critic"])
        params = {**params, "critic": optax.apply_updates(params["critic"], c_updates)}
        a_loss, a_grads = jax.value_and_grad(actor_loss)(params["actor"], params, batch, hyper)
        a_updates, a_state = actor_opt.update(a_grads, opt_state["actor"], params["actor"])
        params = {**params, "actor": optax.apply_updates(params["actor"], a_updates)}
        tau = hyper.algo["tau"]
        target = jax.tree.map(lambda t, p: (1.0 - tau) * t + tau * p, target, params)
        return (params, {"actor": a_state, "critic": c_state}, target, replay, hyper), dict(
            critic_loss=c_loss, actor_loss=a_loss, q_mean=(q * agent_mask).sum() / (n_agents * q.shape[0]))

    def update(runner: RunnerState, _):
        key, k_reset, k_grad = jax.random.split(runner.key, 3)
        reset_obs, reset_state = reset(jax.random.split(k_reset, B), env_params)
        (runner, _, _), stats = jax.lax.scan(env_step, (runner.replace(key=key), reset_state, reset_obs), None, T)
        replay = runner.extra.replay
        opt_state = {"actor": set_lr(runner.opt_state["actor"], runner.hyper.lr),
                     "critic": set_lr(runner.opt_state["critic"], runner.hyper.algo["critic_lr"])}
        carry = (runner.params, opt_state, runner.extra.target, replay, runner.hyper)
        (params, opt_state, target, _, _), aux = jax.lax.scan(gradient_step, carry,
                                                             jax.random.split(k_grad, config.gradient_steps))
        ready = replay.size >= config.batch_size  # learn once the buffer can fill a minibatch
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ready, a, b), new, old)  # noqa: E731
        runner = runner.replace(params=keep(params, runner.params), opt_state=keep(opt_state, runner.opt_state),
                                extra=runner.extra.replace(target=keep(target, runner.extra.target)),
                                update=runner.update + 1)
        s = jax.tree.map(jnp.sum, stats)
        metrics = {k: jnp.where(ready, v.mean(), 0.0) for k, v in aux.items()}  # 0 while the buffer fills
        metrics.update(env.training_metrics(s, B))
        metrics.update(episode_return=s["reward"] / (B * n_agents) * (env.episode_length / T),
                       buffer_size=replay.size.astype(jnp.float32))
        return runner, metrics

    def update_chunk(runner: RunnerState, num_updates: int):
        return jax.lax.scan(update, runner, None, num_updates)

    return init, update_chunk



def _train_fns(env, env_params, policy, config):
    return make_train(env, env_params, policy, DPGConfig(
        num_envs=config.num_envs, rollout_steps=config.rollout_steps, buffer_size=config.buffer_size,
        batch_size=config.batch_size, gradient_steps=config.gradient_steps, max_grad_norm=config.max_grad_norm,
        reward_scale=config.reward_scale, noise_final=config.exploration_final, noise_updates=config.total_updates,
        distinct_observations=config.distinct_observations))


def _hyper(config, shaping: dict, algo: dict) -> Hyper:
    return dpg_hyper(lr=config.lr, gamma=config.gamma, tau=config.tau, noise=config.exploration_noise,
                     critic_lr=config.critic_lr, shaping=shaping, **algo)


def _validate(config) -> None:
    check_fields([
        (1 <= config.batch_size <= config.buffer_size, "batch_size",
         f"must lie in [1, buffer_size={config.buffer_size}], got {config.batch_size}"),
        (config.gradient_steps >= 1, "gradient_steps", f"must be >= 1, got {config.gradient_steps}"),
        (0 < config.tau <= 1, "tau", f"must lie in (0, 1], got {config.tau}"),
        (config.exploration_noise >= 0, "exploration_noise", f"must be >= 0, got {config.exploration_noise}"),
        (0 <= config.exploration_final <= 1, "exploration_final", f"must lie in [0, 1], got {config.exploration_final}"),
        (0 < config.critic_lr < 1, "critic_lr", f"must lie in (0, 1), got {config.critic_lr}")])


DPG = LearnerCore(name="dpg", action_kind="continuous", traced=("lr", "gamma", "critic_lr", "tau", "exploration_noise"),
                  make_train=_train_fns, hyper=_hyper, validate=_validate)
DPG_DISCRETE = replace(DPG, name="dpg-discrete", action_kind="discrete")


@dataclass(frozen=True)
class SoftOptions:
    """The soft actor-critic's own option (`--alg sac_discrete`)."""

    # 0.03: the best mean validation ORR (sampled) of 0.01 / 0.03 / 0.1 / 0.3 on two taxi areas (docs/taxi.md)
    entropy: float = option(0.03, "alpha, the entropy bonus's weight in reward units (traced: a sweep over it "
                                  "is one program); the best policy is softmax(Q / alpha)")
    as_published: bool = option(True, "SAC as published: twin critics whose minimum per move the actor and the "
                                      "target read, the target's next move from the online policy; off: one critic "
                                      "and the target actor (the first sac_discrete, kept in the taxi tables)")


def _validate_soft(config) -> None:
    check_fields([(config.entropy >= 0, "entropy", f"must be >= 0, got {config.entropy}")])


def _dpg(name: str, critic: str, summary: str, core: LearnerCore = DPG, shared: bool = False,
         soft: bool = False) -> Algorithm:
    def make_policy(env, env_params, config):
        discrete = env.action_spec(env_params).num_values or 0
        return DPGPolicy(critic, env.num_agents(env_params), tuple(config.hidden), noise=config.exploration_noise,
                         num_actions=discrete if core is DPG_DISCRETE else 0, shared=shared, soft=soft,
                         twin=soft and config.as_published)

    if soft:
        return Algorithm(name=name, summary=summary, core=core, make_policy=make_policy, Options=SoftOptions,
                         traced=("entropy",), validate=_validate_soft)
    return Algorithm(name=name, summary=summary, core=core, make_policy=make_policy)


DDPG = _dpg("ddpg", "independent", "deterministic policy gradient, shared actor, critic Q(o_i, a_i) per agent")
MADDPG = _dpg("maddpg", "central", "DDPG with a central critic on the global state and every agent's action")
DDPG_DISCRETE = _dpg("ddpg_discrete", "independent", "DDPG over discrete actions: the critic reads the actor's softmax "
                     "(a relaxed one-hot), the env gets a draw from it", core=DPG_DISCRETE)
DDPG_DIST = _dpg("ddpg_dist", "independent", "DDPG on a distribution action: agents that share an observation draw "
                 "from one explored distribution, which the critic reads", core=DPG_DISCRETE, shared=True)
SAC_DISCRETE = _dpg("sac_discrete", "independent", "soft actor-critic over discrete actions: twin critics Q(o_i, .) "
                    "for every move, actor softmax(Q / alpha)-seeking, every agent draws from it", core=DPG_DISCRETE,
                    soft=True)
META = _dpg("meta", "independent", "META's region layer: DDPG ratios in [-1, 1], matched by the env's Kuhn-Munkres layer "
            "(env amod, action meta)")
