"""HAG-PS: hierarchical adaptive grouping parameter sharing (arXiv 2507.20377).

Network. Each agent (city region) i runs a *global* trunk network, shared by
every agent of its global group, giving an embedding h_i of its observation;
a *local* actor-critic head (one 128-unit layer, logits + value), shared by the
agents of its local group, reads [h_i, e_i] where e_i is a learnable identity
embedding that lets agents of one group still act differently. Local groups
nest in global groups. Trunks are stacked `(g_max, ...)` and heads
`(l_max, ...)`; which slots are in use and who uses which is *data* (`Groups`),
so regrouping never changes a shape and never recompiles.

The critic (our change, switchable). The paper reads each agent's value from
its local head. Under a team reward that value must predict the whole city's
return from one region's observation, and on `manhattan-106` that critic never
gives the actor a usable advantage: after 100 updates the argmax policy moves
no bikes and equals no-op on the test days (0.7940; a separate critic layer in
each head: 0.7954). `critic='central'` (the default) keeps the paper's actor
(trunks, local heads, identity embeddings, regrouping) and takes the value
from one critic on the global state plus the agent's identity embedding, as
MAPPO does: 0.8309 argmax after the same 100 updates (experiments/hagps_ablation.py,
README). `critic='local'` with `head='shared'` is the paper's network exactly;
`head='separate'` gives logits and value hidden layers of their own.

Adaptive grouping (after each PPO update, inside the compiled scan; see
`HagpsHooks`). The last `window` steps of every agent's rollout (features:
observation, one-hot action, reward; standardised) are encoded by a variational
LSTM (`jaxmob.nets.trajectory`) into q_i = N(mu_i, var_i). The encoder is
trained a few Adam steps on its ELBO every update. Each of the first
`max_encode_envs` environments gives one sequence per agent; an agent's Gaussian
is the moment-matched mixture of them, so every env's experience counts, no env
index is arbitrary, and day-to-day variability of one agent widens its Gaussian
rather than reading as a difference between agents.

* A group's Gaussian is the parameter average of its members' Gaussians (not
  the moment-matched mixture: that would absorb the members' spread into the
  variance and make two wide but distant groups look alike to the merge test).
* Dispersion of a group = mean symmetrised KL, 0.5 (KL(p||q) + KL(q||p)),
  between each member and the group Gaussian (linear in the group size, where
  pairwise KL would be quadratic, and zero exactly when members coincide).
* Split: the active local group with the largest dispersion > D_split having
  >= 2 real members takes the first free local slot; the new slot's head
  parameters and their Adam moments are copies of the parent's (so the policy is
  unchanged at the moment of the split and only diverges through learning), and
  the members are divided by 2-means on mu (farthest-point initialisation,
  `kmeans_iters` Lloyd steps, fixed). No free slot or an empty side: no split.
* Merge: among pairs of active local groups in the same global group, the one
  with the smallest symmetrised KL between group Gaussians < tau_merge merges;
  the group with fewer real members moves into the other (whose parameters are
  kept) and its slot is freed.
* Global groups regroup too, one level up, at their own thresholds (traced
  `d_split_global`, `tau_merge_global`): the units are the local groups (their
  Gaussians weighted by member counts), a global split moves whole local groups
  to a copy of the parent trunk, a global merge moves all local groups of one
  trunk to another. The paper's hierarchy is coarse shared representation
  (global) over fine behaviour (local) and groups are split or merged by
  trajectory closeness; applying the same rule at both levels keeps the trunk
  level adaptive too, while the larger default global split threshold and the
  requirement of >= 2 local groups make trunk splits rarer than head splits: a
  trunk is the representation learned from the most agents' data, and each
  copy learns from only part of it after a split, so that should need stronger
  evidence. A global split keeps every output unchanged (the copied trunk); a
  global merge does not (moved heads now read another trunk's h_i), which is
  why merging needs closeness. `adapt_global=False` freezes the global level.
* One regroup event does at most: one local merge, one local split (never of
  the group that just absorbed the merge: no merge-then-resplit churn), then on
  the updated local groups one global merge and one global split. Slot counts
  can never exceed `l_max` / `g_max` (a split needs a free slot).
* Padded agents (region_mask False) have zero weight: they never count as
  members, never move in a split and only follow their group in a merge.

Regroup period. Events happen when `period` updates have passed since the last
one (after `warmup` updates, so the encoder has learned something first). The
running average (EMA) of the mean within-group KL is compared at each event with
its value at the previous event: if it moved by less than `stable_tol` relative
to max(previous value, `stable_floor`) and the event changed no group, grouping
has stabilised and the period doubles; otherwise it halves (regroup often while
behaviour is still moving or groups were just changed). It is clipped to
[period_min, period_max].

D_split / tau_merge (and the global ones) come from `runner.hyper.algo`
(`Hyper.make(d_split=..., tau_merge=..., d_split_global=..., tau_merge_global=...)`),
so a grid of thresholds runs as one vmapped program; absent keys fall back to
the policy's defaults. Their unit is nats of the encoder's posteriors. With the
plain ELBO those KLs keep growing as the encoder sharpens (on the Jersey City
scenario the all-agent dispersion went from ~5 to ~100 nats in 300 updates), so
any fixed threshold ends up splitting every group up to the cap. The encoder is
therefore a capacity-constrained beta-VAE (`kl_beta` 50, `kl_capacity` 5 nats
per trajectory): each posterior holds about C nats, the all-agent dispersion
settles near 2C (~10 nats there), and D_split = 2 means "members spread more
than ~1/5 of the whole city's spread". `kl_beta=1, kl_capacity=0` restores the
plain ELBO.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from ..core.algorithm import Algorithm
from ..core.errors import check_fields
from ..core.task import option
from ..nets import MLP
from ..nets.mlp import apply_shared_input
from ..nets.init import orthogonal
from ..nets.trajectory import TrajectoryVAE, elbo_loss, symmetric_kl
from .policies import grouped_apply, stacked_init
from .ppo import PPO, AlgoHooks, RunnerState, Transition

THRESHOLD_NAMES = ("d_split", "tau_merge", "d_split_global", "tau_merge_global")


# --------------------------------------------------------------------------- networks


class Trunk(nn.Module):
    """Global trunk: observation -> embedding h_i (tanh MLP, no output layer)."""

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, x):
        for h in self.hidden:
            x = nn.tanh(nn.Dense(h, kernel_init=orthogonal(np.sqrt(2.0)))(x))
        return x


class ActorCriticHead(nn.Module):
    """Local head: [h_i, e_i] -> [logits (A), value] from one shared hidden layer.

    Output is one array so `grouped_apply` can vmap it; the logit layer starts
    small (near-uniform policy) and the value layer at unit scale."""

    hidden: int
    num_actions: int

    @nn.compact
    def __call__(self, x):
        z = nn.tanh(nn.Dense(self.hidden, kernel_init=orthogonal(np.sqrt(2.0)))(x))
        logits = nn.Dense(self.num_actions, kernel_init=orthogonal(0.01),
                          bias_init=nn.initializers.zeros)(z)
        value = nn.Dense(1, kernel_init=orthogonal(1.0), bias_init=nn.initializers.zeros)(z)
        return jnp.concatenate([logits, value], axis=-1)


HEAD_KINDS = ("shared", "separate")
CRITIC_KINDS = ("local", "central")


@struct.dataclass
class Groups:
    """Assignment pytree: agent -> local group -> global group, and live slots."""

    agent_local: jax.Array  # (R,) int32
    local_global: jax.Array  # (l_max,) int32
    local_active: jax.Array  # (l_max,) bool
    global_active: jax.Array  # (g_max,) bool

    @property
    def agent_global(self):
        return self.local_global[self.agent_local]


# --------------------------------------------------------------------------- grouping math


def cluster_centres(mu, logvar, weight, assign, num_clusters: int):
    """Weighted parameter-average Gaussian of each cluster and its total weight.

    mu, logvar (N, Z); weight (N,); assign (N,) in [0, K). Empty clusters get
    N(0, I) (finite, and irrelevant: callers mask them)."""
    onehot = jax.nn.one_hot(assign, num_clusters, dtype=mu.dtype) * weight[:, None]
    total = onehot.sum(0)
    denom = jnp.maximum(total, 1e-12)[:, None]
    c_mu = onehot.T @ mu / denom
    c_var = onehot.T @ jnp.exp(logvar) / denom
    c_var = jnp.where(total[:, None] > 0, c_var, 1.0)
    return c_mu, jnp.log(c_var), total


def member_counts(weight, assign, num_clusters: int):
    """Number of units with positive weight in each cluster."""
    return jax.nn.one_hot(assign, num_clusters, dtype=jnp.int32).T @ (weight > 0).astype(jnp.int32)


def cluster_dispersion(mu, logvar, weight, assign, num_clusters: int):
    """(K,) weighted mean symmetrised KL between members and their cluster Gaussian."""
    c_mu, c_lv, total = cluster_centres(mu, logvar, weight, assign, num_clusters)
    kl = symmetric_kl(mu, logvar, c_mu[assign], c_lv[assign])
    per = jax.nn.one_hot(assign, num_clusters, dtype=mu.dtype).T @ (kl * weight)
    return per / jnp.maximum(total, 1e-12)


def mean_group_kl(mu, logvar, weight, assign, num_clusters: int):
    """Scalar: mean over weighted units of the symmetrised KL to their own cluster's Gaussian."""
    c_mu, c_lv, _ = cluster_centres(mu, logvar, weight, assign, num_clusters)
    kl = symmetric_kl(mu, logvar, c_mu[assign], c_lv[assign])
    return (kl * weight).sum() / jnp.maximum(weight.sum(), 1e-12)


def two_means(x, weight, iters: int):
    """Split the units with weight > 0 into two clusters by weighted 2-means on x.

    Deterministic: centre A is the member farthest from the weighted mean,
    centre B the member farthest from A, then `iters` Lloyd steps. Returns a
    bool (N,) marking members that go to the *second* cluster (B); non-members
    are always False. Identical members give an empty second cluster."""
    member = weight > 0
    mean = (weight[:, None] * x).sum(0) / jnp.maximum(weight.sum(), 1e-12)
    far_from = lambda p: jnp.where(member, jnp.sum((x - p) ** 2, -1), -1.0)
    c_a = x[jnp.argmax(far_from(mean))]
    c_b = x[jnp.argmax(far_from(c_a))]

    def side_of(c_a, c_b):
        return member & (jnp.sum((x - c_b) ** 2, -1) < jnp.sum((x - c_a) ** 2, -1))

    def weighted_mean(mask, fallback):
        w = jnp.where(mask, weight, 0.0)
        return jnp.where(w.sum() > 0, (w[:, None] * x).sum(0) / jnp.maximum(w.sum(), 1e-12), fallback)

    def lloyd(centres, _):
        c_a, c_b = centres
        side = side_of(c_a, c_b)
        return (weighted_mean(member & ~side, c_a), weighted_mean(side, c_b)), None

    (c_a, c_b), _ = jax.lax.scan(lloyd, (c_a, c_b), None, iters)
    return side_of(c_a, c_b)


class SplitResult(NamedTuple):
    assign: jax.Array
    active: jax.Array
    ok: jax.Array  # bool scalar: a split happened
    src: jax.Array  # the parent slot
    dst: jax.Array  # the new slot (meaningful only when ok)


class MergeResult(NamedTuple):
    assign: jax.Array
    active: jax.Array
    ok: jax.Array
    keep: jax.Array  # the slot that absorbed the other
    drop: jax.Array  # the slot freed


def split_once(mu, logvar, weight, assign, active, threshold, iters: int, blocked=None) -> SplitResult:
    """Split the most dispersed eligible cluster into itself and the first free slot.

    Eligible: active, >= 2 members, dispersion > threshold, not `blocked`."""
    K = active.shape[0]
    disp = cluster_dispersion(mu, logvar, weight, assign, K)
    eligible = active & (member_counts(weight, assign, K) >= 2) & (disp > threshold)
    if blocked is not None:
        eligible = eligible & ~blocked
    src = jnp.argmax(jnp.where(eligible, disp, -jnp.inf))
    free = ~active
    dst = jnp.argmax(free)
    members = jnp.where(assign == src, weight, 0.0)
    moves = two_means(mu, members, iters)
    stays = (members > 0) & ~moves
    ok = eligible.any() & free.any() & moves.any() & stays.any()
    new_assign = jnp.where(ok & moves, dst, assign).astype(assign.dtype)
    new_active = active.at[dst].set(active[dst] | ok)
    return SplitResult(new_assign, new_active, ok, src, dst)


def merge_once(mu, logvar, weight, assign, active, parent, threshold) -> MergeResult:
    """Merge the closest pair of active clusters with the same parent if their
    symmetrised KL (between cluster Gaussians) is below threshold. The cluster
    with less weight moves into the other; its slot is freed."""
    K = active.shape[0]
    c_mu, c_lv, total = cluster_centres(mu, logvar, weight, assign, K)
    pair = symmetric_kl(c_mu[:, None], c_lv[:, None], c_mu[None], c_lv[None])
    valid = (active[:, None] & active[None, :] & (parent[:, None] == parent[None, :])
             & ~jnp.eye(K, dtype=bool) & (pair < threshold))
    flat = jnp.argmin(jnp.where(valid, pair, jnp.inf).ravel())
    a, b = flat // K, flat % K
    ok = valid.any()
    a_keeps = total[a] >= total[b]
    keep, drop = jnp.where(a_keeps, a, b), jnp.where(a_keeps, b, a)
    new_assign = jnp.where(ok & (assign == drop), keep, assign).astype(assign.dtype)
    new_active = active.at[drop].set(active[drop] & ~ok)
    return MergeResult(new_assign, new_active, ok, keep, drop)


def copy_slot(stack, src, dst, ok):
    """Leafwise: slot dst := slot src where ok (a scalar bool), else unchanged."""
    return jax.tree.map(lambda w: w.at[dst].set(jnp.where(ok, w[src], w[dst])), stack)


def map_param_trees(opt_state, params, fn):
    """Apply fn to every params-shaped subtree of an optimizer state (Adam's mu and nu)."""
    structure = jax.tree.structure(params)
    like = lambda x: isinstance(x, dict) and jax.tree.structure(x) == structure
    return jax.tree.map(lambda x: fn(x) if like(x) else x, opt_state, is_leaf=like)


def copy_group(params, opt_state, name: str, src, dst, ok):
    """Copy stack `name`'s slot src onto dst in the parameters and their Adam moments."""
    fn = lambda tree: {**tree, name: copy_slot(tree[name], src, dst, ok)}
    return fn(params), map_param_trees(opt_state, params, fn)


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class HagpsPolicy:
    """HAG-PS actor-critic: global trunks, local heads, identity embeddings, and
    the settings of its in-graph adaptive regrouping (see module docstring)."""

    num_agents: int
    num_actions: int
    hidden: tuple = (64, 64)  # trunk layers; the last width is dim(h_i)
    g_max: int = 4  # global-group (trunk) slots
    l_max: int = 8  # local-group (head) slots
    id_dim: int = 8  # identity embedding width; 0 disables
    head_hidden: int = 128
    head: str = "shared"  # shared: one 128-unit layer feeds logits and value (the paper); separate: actor and critic layers of their own
    critic: str = "central"  # central: one critic on the global state + identity embedding (MAPPO's; see below); local: the value comes from the agent's local head (the paper)
    init_global: int = 1  # initial groups (1 + 1 = Share-All with identity embeddings)
    init_local: int = 1
    # trajectory encoder
    window: int = 24  # H: last steps of the rollout that describe an agent (at most rollout_steps)
    latent_dim: int = 8
    encoder_hidden: int = 64
    encoder_lr: float = 1e-3
    encoder_steps: int = 2  # Adam steps on the ELBO per PPO update
    kl_beta: float = 50.0  # with kl_capacity: pins each posterior's information near kl_capacity nats
    kl_capacity: float = 5.0  # (kl_beta 1, kl_capacity 0: the plain ELBO); see trajectory.elbo_loss
    max_encode_envs: int = 8
    # grouping (default thresholds; runner.hyper.algo overrides)
    d_split: float = 2.0
    tau_merge: float = 0.5
    d_split_global: float = 4.0
    tau_merge_global: float = 0.5
    adapt_global: bool = True
    kmeans_iters: int = 8
    # regroup period
    period_min: int = 2
    period_max: int = 32
    warmup: int = 5
    kl_ema: float = 0.1  # weight of the newest value in the running average KL
    stable_tol: float = 0.05  # relative change of the running KL below which grouping counts as stable
    stable_floor: float = 0.1  # nats: changes of a KL below this are judged against it (noise level)

    def __post_init__(self):
        checks = [(1 <= self.init_global <= self.g_max, "need 1 <= init_global <= g_max"),
                  (self.init_global <= self.init_local <= self.l_max, "need init_global <= init_local <= l_max"),
                  (1 <= self.period_min <= self.period_max, "need 1 <= period_min <= period_max"),
                  (self.window >= 1 and self.encoder_steps >= 0 and self.id_dim >= 0, "window >= 1, encoder_steps >= 0, id_dim >= 0")]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"HagpsPolicy: {msg}")
        if self.head not in HEAD_KINDS:
            raise ValueError(f"HagpsPolicy: head must be one of {HEAD_KINDS}, got {self.head!r}")
        if self.critic not in CRITIC_KINDS:
            raise ValueError(f"HagpsPolicy: critic must be one of {CRITIC_KINDS}, got {self.critic!r}")

    # ----- sharing structure

    def groups(self) -> Groups:
        """Initial assignment: agent r -> local r % init_local, local l -> global l % init_global."""
        local_ids = jnp.arange(self.l_max, dtype=jnp.int32)
        return Groups(agent_local=jnp.arange(self.num_agents, dtype=jnp.int32) % self.init_local,
                      local_global=jnp.where(local_ids < self.init_local, local_ids % self.init_global, 0).astype(jnp.int32),
                      local_active=local_ids < self.init_local,
                      global_active=jnp.arange(self.g_max) < self.init_global)

    def _trunk(self):
        return Trunk(tuple(self.hidden))

    def _head(self):
        """The grouped local head: logits + value from one layer, or logits alone when
        the value has a network of its own (separate head or central critic)."""
        if self.head == "shared" and self.critic == "local":
            return ActorCriticHead(self.head_hidden, self.num_actions)
        return MLP((self.head_hidden,), self.num_actions, out_scale=0.01)

    @property
    def grouped_stacks(self) -> tuple:
        """Parameter stacks indexed by local group: what a local split copies."""
        return ("head", "value_head") if (self.head == "separate" and self.critic == "local") else ("head",)

    def init(self, key, obs_dim: int, state_dim: int):
        """Params: trunk stack (g_max), head stack(s) (l_max), identity embeddings (R, id_dim),
        and a central critic when `critic='central'`."""
        k_trunk, k_head, k_id, k_value = jax.random.split(key, 4)
        h_dim = self.hidden[-1] if self.hidden else obs_dim
        head_in = jnp.zeros((h_dim + self.id_dim,))
        params = {"trunk": stacked_init(self._trunk(), k_trunk, self.g_max, jnp.zeros((obs_dim,))),
                  "head": stacked_init(self._head(), k_head, self.l_max, head_in)}
        if "value_head" in self.grouped_stacks:
            params["value_head"] = stacked_init(MLP((self.head_hidden,), 1), k_value, self.l_max, head_in)
        if self.critic == "central":
            params["critic"] = MLP(tuple(self.hidden), 1).init(k_value, jnp.zeros((state_dim + self.id_dim,)))
        if self.id_dim:
            params["agent_id"] = 0.1 * jax.random.normal(k_id, (self.num_agents, self.id_dim))
        return params

    def apply(self, params, groups: Groups, obs, state):
        """obs (..., R, O), state (..., S) (central critic only) -> logits (..., R, A), values (..., R)."""
        h = grouped_apply(self._trunk(), params["trunk"], groups.agent_global, obs)
        ids = jnp.broadcast_to(params["agent_id"], h.shape[:-1] + (self.id_dim,)) if self.id_dim else h[..., :0]
        h = jnp.concatenate([h, ids], axis=-1)
        out = grouped_apply(self._head(), params["head"], groups.agent_local, h)
        if self.critic == "central":
            return out, apply_shared_input(MLP(tuple(self.hidden), 1), params["critic"], state, ids)[..., 0]
        if self.head == "separate":
            return out, grouped_apply(MLP((self.head_hidden,), 1), params["value_head"], groups.agent_local, h)[..., 0]
        return out[..., :-1], out[..., -1]

    # ----- regrouping

    def thresholds(self, hyper=None) -> dict:
        """Traced thresholds: `hyper.algo[name]` where present, else this policy's default."""
        algo = getattr(hyper, "algo", None) or {}
        return {n: jnp.asarray(algo[n] if n in algo else getattr(self, n), jnp.float32) for n in THRESHOLD_NAMES}

    def regroup(self, groups: Groups, params, opt_state, mu, logvar, agent_mask, thresholds: dict):
        """One regroup event on agent Gaussians (mu, logvar: (R, Z)).

        Returns (groups, params, opt_state, counts) where counts holds 0/1 int32
        flags local_merges, local_splits, global_merges, global_splits."""
        weight = agent_mask.astype(mu.dtype)
        slots = jnp.arange(self.l_max)
        lm = merge_once(mu, logvar, weight, groups.agent_local, groups.local_active, groups.local_global,
                        thresholds["tau_merge"])
        ls = split_once(mu, logvar, weight, lm.assign, lm.active, thresholds["d_split"], self.kmeans_iters,
                        blocked=lm.ok & (slots == lm.keep))
        local_global = groups.local_global.at[ls.dst].set(
            jnp.where(ls.ok, groups.local_global[ls.src], groups.local_global[ls.dst]))
        for name in self.grouped_stacks:
            params, opt_state = copy_group(params, opt_state, name, ls.src, ls.dst, ls.ok)
        groups = Groups(ls.assign, local_global, ls.active, groups.global_active)
        counts = dict(local_merges=lm.ok.astype(jnp.int32), local_splits=ls.ok.astype(jnp.int32),
                      global_merges=jnp.zeros((), jnp.int32), global_splits=jnp.zeros((), jnp.int32))
        if self.adapt_global:
            groups, params, opt_state, g_counts = self._regroup_global(groups, params, opt_state, mu, logvar,
                                                                       weight, thresholds)
            counts.update(g_counts)
        return groups, params, opt_state, counts

    def _regroup_global(self, groups: Groups, params, opt_state, mu, logvar, weight, thresholds):
        """The same merge-then-split one level up: units are local groups, weighted by real members."""
        c_mu, c_lv, total = cluster_centres(mu, logvar, weight, groups.agent_local, self.l_max)
        total = jnp.where(groups.local_active, total, 0.0)
        gm = merge_once(c_mu, c_lv, total, groups.local_global, groups.global_active,
                        jnp.zeros(self.g_max, jnp.int32), thresholds["tau_merge_global"])
        gs = split_once(c_mu, c_lv, total, gm.assign, gm.active, thresholds["d_split_global"], self.kmeans_iters,
                        blocked=gm.ok & (jnp.arange(self.g_max) == gm.keep))
        params, opt_state = copy_group(params, opt_state, "trunk", gs.src, gs.dst, gs.ok)
        groups = Groups(groups.agent_local, gs.assign, groups.local_active, gs.active)
        return groups, params, opt_state, dict(global_merges=gm.ok.astype(jnp.int32), global_splits=gs.ok.astype(jnp.int32))

    def hooks(self, obs_dim: int, agent_mask, num_envs: int, rollout_steps: int) -> "HagpsHooks":
        """The AlgoHooks that run the encoder and regrouping inside `make_train`.
        `agent_mask` is `(A,)` or, for a batch of cities, `(B, A)`: an agent
        index counts where it is real in any city."""
        agent_mask = jnp.asarray(agent_mask, bool)
        if agent_mask.shape[-1] != self.num_agents:
            raise ValueError(f"HagpsPolicy has {self.num_agents} agents, the environment has {agent_mask.shape[-1]}")
        agent_mask = agent_mask.reshape(-1, self.num_agents).any(0)
        return HagpsHooks(self, obs_dim=obs_dim, agent_mask=agent_mask, num_envs=num_envs, rollout_steps=rollout_steps)


# --------------------------------------------------------------------------- hooks


@struct.dataclass
class HagpsState:
    """HAG-PS algorithm state carried in `RunnerState.extra`."""

    enc_params: Any
    enc_opt_state: Any
    key: jax.Array
    kl_avg: jax.Array  # running average (EMA) of the mean within-group KL
    kl_at_event: jax.Array  # kl_avg at the last regroup event (< 0: none yet)
    period: jax.Array  # updates between regroup events
    last_event: jax.Array  # update index of the last event
    seen: jax.Array  # updates processed (0: EMA not started)


class HagpsHooks(AlgoHooks):
    """Train the trajectory encoder every update; regroup when the period elapses."""

    def __init__(self, policy: HagpsPolicy, obs_dim: int, agent_mask, num_envs: int, rollout_steps: int):
        self.policy = policy
        self.agent_mask = agent_mask
        self.num_encode_envs = min(num_envs, policy.max_encode_envs)
        self.window = min(policy.window, rollout_steps)  # a rollout shorter than the window is used whole
        self.feature_dim = obs_dim + policy.num_actions + 1
        self.vae = TrajectoryVAE(self.feature_dim, policy.encoder_hidden, policy.latent_dim)
        self.enc_optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(policy.encoder_lr))

    def init(self, key, params) -> HagpsState:
        k_init, k_state = jax.random.split(key)
        dummy = jnp.zeros((1, self.window, self.feature_dim))
        enc_params = self.vae.init(k_init, dummy, k_init)
        p = self.policy
        return HagpsState(enc_params=enc_params, enc_opt_state=self.enc_optimizer.init(enc_params), key=k_state,
                          kl_avg=jnp.zeros(()), kl_at_event=-jnp.ones(()), period=jnp.asarray(p.period_min, jnp.int32),
                          last_event=jnp.zeros((), jnp.int32), seen=jnp.zeros((), jnp.int32))

    def window_features(self, traj: Transition):
        """Last `window` steps of the first envs as (E, R, H, F) standardised sequences.

        Features are z-scored per feature over real agents, envs and steps, so
        bike counts and one-hot actions weigh alike in the reconstruction. A
        window that straddles an auto-reset is still one stretch of the agent's
        experience and is encoded as such."""
        H, E, A = self.window, self.num_encode_envs, self.policy.num_actions
        sl = lambda x: x[-H:, :E]
        feats = jnp.concatenate([sl(traj.obs), jax.nn.one_hot(sl(traj.action), A), sl(traj.reward)[..., None]], -1)
        feats = jnp.moveaxis(feats, 0, 2)  # (E, R, H, F)
        w = jnp.broadcast_to(self.agent_mask[None, :, None, None], feats.shape[:3] + (1,)).astype(feats.dtype)
        n = jnp.maximum(w.sum((0, 1, 2)), 1.0)
        mean = (feats * w).sum((0, 1, 2)) / n
        std = jnp.sqrt(((feats - mean) ** 2 * w).sum((0, 1, 2)) / n)
        return (feats - mean) / jnp.maximum(std, 1e-3)

    def train_encoder(self, enc_params, enc_opt_state, x, weight, key):
        """`encoder_steps` Adam steps on the ELBO of sequences x (N, H, F); returns the last loss."""
        def step(carry, k):
            params, opt_state = carry
            (loss, _), grads = jax.value_and_grad(elbo_loss, argnums=1, has_aux=True)(
                self.vae, params, x, k, weight, self.policy.kl_beta, self.policy.kl_capacity)
            updates, opt_state = self.enc_optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        keys = jax.random.split(key, max(self.policy.encoder_steps, 1))[: self.policy.encoder_steps]
        (enc_params, enc_opt_state), losses = jax.lax.scan(step, (enc_params, enc_opt_state), keys)
        last = losses[-1] if self.policy.encoder_steps else jnp.zeros(())
        return enc_params, enc_opt_state, last

    def agent_gaussians(self, enc_params, feats):
        """(E, R, H, F) -> per-agent (mu, logvar) (R, Z): the moment-matched mixture of
        the agent's per-env posteriors, so day-to-day variability of its behaviour
        widens its Gaussian instead of reading as a difference between agents."""
        mu, logvar = self.vae.apply(enc_params, feats, method=TrajectoryVAE.encode)
        mean = mu.mean(0)
        var = (jnp.exp(logvar) + mu**2).mean(0) - mean**2
        return mean, jnp.log(jnp.maximum(var, 1e-6))

    def after_update(self, runner: RunnerState, traj: Transition):
        p, st = self.policy, runner.extra
        feats = self.window_features(traj)
        E, R = feats.shape[:2]
        seq_weight = jnp.broadcast_to(self.agent_mask, (E, R)).reshape(-1)
        key, k_train = jax.random.split(st.key)
        enc_params, enc_opt_state, enc_loss = self.train_encoder(
            st.enc_params, st.enc_opt_state, feats.reshape((E * R,) + feats.shape[2:]), seq_weight, k_train)
        mu, logvar = self.agent_gaussians(enc_params, feats)
        weight = self.agent_mask.astype(mu.dtype)
        kl_now = mean_group_kl(mu, logvar, weight, runner.groups.agent_local, p.l_max)
        kl_avg = jnp.where(st.seen == 0, kl_now, (1.0 - p.kl_ema) * st.kl_avg + p.kl_ema * kl_now)

        due = (runner.update >= p.warmup) & (runner.update - st.last_event >= st.period)
        thresholds = p.thresholds(runner.hyper)

        def regroup(operand):
            groups, params, opt_state = operand
            return p.regroup(groups, params, opt_state, mu, logvar, self.agent_mask, thresholds)

        def keep(operand):
            zero = jnp.zeros((), jnp.int32)
            return (*operand, dict(local_merges=zero, local_splits=zero, global_merges=zero, global_splits=zero))

        groups, params, opt_state, counts = jax.lax.cond(due, regroup, keep,
                                                         (runner.groups, runner.params, runner.opt_state))
        period = self.next_period(st, kl_avg, sum(counts.values()) > 0)
        extra = st.replace(enc_params=enc_params, enc_opt_state=enc_opt_state, key=key, kl_avg=kl_avg,
                           kl_at_event=jnp.where(due, kl_avg, st.kl_at_event),
                           period=jnp.where(due, period, st.period),
                           last_event=jnp.where(due, runner.update, st.last_event), seen=st.seen + 1)
        runner = runner.replace(params=params, opt_state=opt_state, groups=groups, extra=extra)
        metrics = dict(local_groups=groups.local_active.sum(), global_groups=groups.global_active.sum(),
                       group_kl=kl_now, group_kl_avg=kl_avg, regroup_period=extra.period,
                       regroup_event=due.astype(jnp.int32), encoder_loss=enc_loss, **counts)
        return runner, metrics

    def next_period(self, st: HagpsState, kl_avg, changed):
        """Double the period when the running KL moved < stable_tol (relative) since the
        last event and nothing was regrouped; otherwise halve it. Clipped to bounds.

        The change is relative to max(previous KL, stable_floor): once groups are
        tight the KL is near zero and its relative jitter would otherwise read as
        instability forever."""
        p = self.policy
        rel = jnp.abs(kl_avg - st.kl_at_event) / jnp.maximum(jnp.abs(st.kl_at_event), p.stable_floor)
        stable = (st.kl_at_event >= 0) & (rel < p.stable_tol) & ~changed
        return jnp.clip(jnp.where(stable, st.period * 2, st.period // 2), p.period_min, p.period_max).astype(jnp.int32)


@dataclass(frozen=True)
class HagpsOptions:
    """HAG-PS's own options (`--alg hagps`); the four thresholds are traced, so a sweep vmaps over them."""

    d_split: float = option(2.0, "split a local group when its KL dispersion (nats) exceeds this")
    tau_merge: float = option(0.5, "merge two local groups whose symmetrised KL is below this")
    d_split_global: float = option(4.0, "the same for global (trunk) groups")
    tau_merge_global: float = option(0.5, "the same for global (trunk) groups")
    g_max: int = option(4, "cap on global groups (trunks)")
    l_max: int = option(8, "cap on local groups (actor-critic heads)")
    id_dim: int = option(8, "identity embedding size (0 disables)")
    window: int = option(24, "trajectory steps per agent fed to the encoder (<= rollout_steps)")
    head: str = option("shared", "local head: shared (one 128-unit layer feeds logits and value, the paper) | "
                                 "separate (actor and critic layers of their own)")
    critic: str = option("central", "central (one critic on the global state + identity embedding, as MAPPO: the "
                                    "default, see README) | local (value from the agent's local head, the paper)")


def _validate(config) -> None:
    checks = [(1 <= config.g_max <= config.l_max, "g_max",
               f"need 1 <= g_max <= l_max, got g_max={config.g_max}, l_max={config.l_max}"),
              (config.id_dim >= 0, "id_dim", f"must be >= 0, got {config.id_dim}"),
              (1 <= config.window <= config.rollout_steps, "window",
               f"must lie in [1, rollout_steps={config.rollout_steps}], got {config.window}"),
              (config.head in HEAD_KINDS, "head", f"must be one of {', '.join(HEAD_KINDS)}, got {config.head!r}"),
              (config.critic in CRITIC_KINDS, "critic", f"must be one of {', '.join(CRITIC_KINDS)}, got {config.critic!r}")]
    checks += [(getattr(config, n) >= 0, n, f"must be >= 0, got {getattr(config, n)}") for n in THRESHOLD_NAMES]
    check_fields(checks)


def _make_policy(env, env_params, config):
    return HagpsPolicy(num_agents=env.num_agents(env_params), num_actions=env.num_actions(env_params),
                       hidden=tuple(config.hidden), g_max=config.g_max, l_max=config.l_max, id_dim=config.id_dim,
                       window=config.window, head=config.head, critic=config.critic)


ALGORITHM = Algorithm(name="hagps", summary="HAG-PS: hierarchical adaptive grouping (trunks x heads, split/merge by "
                      "trajectory KL)", core=PPO, make_policy=_make_policy, Options=HagpsOptions,
                      traced=THRESHOLD_NAMES, validate=_validate)
