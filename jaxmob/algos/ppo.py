"""The one PPO core: rollout, GAE, clipped losses, minibatch epochs.

Every multi-agent algorithm (Share-All, IPPO, MAPPO, No-Share, HAG-PS) runs
through this file; they differ only in the policy object (network + sharing
scheme). A chunk of updates is one `lax.scan`, fused with the environment.
Hyperparameters that can be traced live in `Hyper`, so a sweep vmaps over them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import distrax
import jax
import jax.numpy as jnp
import optax
from flax import struct

from ..core.algorithm import LearnerCore
from ..core.errors import check_fields
from ..core.env import NEG_INF, action_logits, per_agent, runs_per_distinct_observation, step_auto_reset  # noqa: F401  (NEG_INF: for callers)

@struct.dataclass
class Hyper:
    """Traced hyperparameters: one value per run, vmappable over a sweep."""

    lr: jax.Array
    ent_coef: jax.Array
    clip_eps: jax.Array
    vf_coef: jax.Array
    gamma: jax.Array
    gae_lambda: jax.Array
    shaping: dict  # the environment's traced reward-shaping coefficients (`Environment.learning_reward`)
    algo: dict  # algorithm-specific traced values (HAG-PS thresholds), {} otherwise

    @classmethod
    def make(cls, lr=3e-4, ent_coef=0.01, clip_eps=0.2, vf_coef=0.5, gamma=0.995, gae_lambda=0.95, shaping=None,
             **algo):
        f = lambda v: jnp.asarray(v, jnp.float32)
        return cls(f(lr), f(ent_coef), f(clip_eps), f(vf_coef), f(gamma), f(gae_lambda),
                   {k: f(v) for k, v in sorted((shaping or {}).items())}, {k: f(v) for k, v in sorted(algo.items())})


@dataclass(frozen=True)
class PPOConfig:
    """Static (shape-determining) PPO settings."""

    num_envs: int = 8
    rollout_steps: int = 144
    epochs: int = 4
    minibatches: int = 4
    max_grad_norm: float = 0.5
    reward_scale: float = 0.1
    value_clip: float = 10.0
    distinct_observations: bool = True  # run agent-symmetric networks once per distinct observation (`per_agent`)


@struct.dataclass
class Transition:
    obs: jax.Array  # (B, R, O), or (B, U, O) distinct observations with `obs_index`
    gstate: jax.Array  # (B, S)
    action: jax.Array  # (B, R)
    logp: jax.Array  # (B, R)
    value: jax.Array  # (B, R)
    reward: jax.Array  # (B, R)
    done: jax.Array  # (B,)
    obs_index: Any = None  # (B, R) int32: agent r's row of `obs`; None: row r


@struct.dataclass
class RunnerState:
    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    key: jax.Array
    update: jax.Array
    groups: Any
    hyper: Hyper
    extra: Any = None  # algorithm state (HAG-PS grouping), None otherwise


def gae(rewards, values, dones, last_value, gamma, lam):
    """Generalised advantage estimation over time axis 0.

    rewards, values: (T, ..., R); dones: (T, ...) true where the episode ended
    after step t (the next value belongs to a new episode); last_value (..., R).
    Returns (advantages, returns)."""
    not_done = 1.0 - dones.astype(jnp.float32)
    not_done = not_done.reshape(not_done.shape + (1,) * (rewards.ndim - not_done.ndim))

    def back(carry, xs):
        adv_next, v_next = carry
        r, v, nd = xs
        delta = r + gamma * v_next * nd - v
        adv = delta + gamma * lam * nd * adv_next
        return (adv, v), adv

    _, adv = jax.lax.scan(back, (jnp.zeros_like(last_value), last_value), (rewards, values, not_done), reverse=True)
    return adv, adv + values


def masked_mean(x, mask):
    mask = jnp.broadcast_to(mask, x.shape).astype(x.dtype)
    return (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def ppo_loss(params, policy, groups, batch, adv, ret, action_mask, prior, agent_mask, hyper: Hyper, value_clip):
    """Clipped policy loss + clipped value loss - entropy bonus, averaged over real agents."""
    logits, values = per_agent(policy, params, groups, batch.obs, batch.gstate, batch.obs_index)
    dist = distrax.Categorical(logits=action_logits(logits, action_mask, prior))
    logp = dist.log_prob(batch.action)
    ratio = jnp.exp(logp - batch.logp)
    adv_n = (adv - masked_mean(adv, agent_mask)) / (jnp.sqrt(masked_mean((adv - masked_mean(adv, agent_mask)) ** 2, agent_mask)) + 1e-8)
    pg = -jnp.minimum(ratio * adv_n, jnp.clip(ratio, 1.0 - hyper.clip_eps, 1.0 + hyper.clip_eps) * adv_n)
    v_clipped = batch.value + jnp.clip(values - batch.value, -value_clip, value_clip)
    vf = 0.5 * jnp.maximum((values - ret) ** 2, (v_clipped - ret) ** 2)
    ent = dist.entropy()
    pg_loss, vf_loss, entropy = masked_mean(pg, agent_mask), masked_mean(vf, agent_mask), masked_mean(ent, agent_mask)
    total = pg_loss + hyper.vf_coef * vf_loss - hyper.ent_coef * entropy
    approx_kl = masked_mean((ratio - 1.0) - jnp.log(ratio), agent_mask)
    clip_frac = masked_mean((jnp.abs(ratio - 1.0) > hyper.clip_eps).astype(jnp.float32), agent_mask)
    return total, dict(pg_loss=pg_loss, vf_loss=vf_loss, entropy=entropy, approx_kl=approx_kl, clip_frac=clip_frac)


def sgd_step(optimizer, policy, groups, hyper, action_mask, prior, agent_mask, value_clip, params, opt_state, batch,
             adv, ret):
    """One minibatch gradient step of the PPO loss: (params, opt_state, loss metrics)."""
    grads, aux = jax.grad(ppo_loss, has_aux=True)(params, policy, groups, batch, adv, ret, action_mask, prior,
                                                  agent_mask, hyper, value_clip)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    aux["grad_norm"] = optax.tree.norm(grads)
    return optax.apply_updates(params, updates), opt_state, aux


def make_optimizer(max_grad_norm: float, eps: float = 1e-5):
    """Adam with a traced learning rate (set from `Hyper.lr` every update)."""
    return optax.chain(optax.clip_by_global_norm(max_grad_norm),
                       optax.inject_hyperparams(optax.adam)(learning_rate=3e-4, eps=eps))


def set_lr(opt_state, lr):
    clip_state, adam_state = opt_state
    hp = dict(adam_state.hyperparams)
    hp["learning_rate"] = jnp.asarray(lr, hp["learning_rate"].dtype)
    return (clip_state, adam_state._replace(hyperparams=hp))


def sample_actions(key, policy, params, groups, obs, gstate, action_mask, prior, index=None):
    logits, value = per_agent(policy, params, groups, obs, gstate, index)
    dist = distrax.Categorical(logits=action_logits(logits, action_mask, prior))
    action = dist.sample(seed=key)
    return action.astype(jnp.int32), dist.log_prob(action), value


def make_train(env, env_params, policy, config: PPOConfig, hooks: "AlgoHooks | None" = None, *,
               city_batch: bool = False):
    """Return `(init, update_chunk)`, pure functions of their inputs.

    init(key, hyper) -> RunnerState
    update_chunk(runner, num_updates) -> (runner, metrics with a leading update axis)

    Both are jit-compiled by the caller (`jaxmob.train`), and vmappable over
    (key, hyper) for sweeps. `env` is any `Environment` with discrete actions;
    its plug-in decides what an agent is. `hooks` lets an algorithm (HAG-PS)
    act between updates on the rollout, inside the scan; by default they come
    from `policy.hooks(...)` where the policy has them.

    Two layouts of the same algorithm:
    * `city_batch=False`: `config.num_envs` environments of the one city
      `env_params`; minibatches are random (time, env) samples.
    * `city_batch=True`: `env_params` is a batch of cities (leading axis), one
      environment each (`config.num_envs` is ignored), the data-parallel
      trainer of `jaxmob.parallel`; minibatches are random *time steps* of
      every city, so the city axis stays whole and can be split over devices.
    """
    spec = env.action_spec(env_params if not city_batch else jax.tree.map(lambda x: x[0], env_params))
    if spec.num_values is None:
        raise TypeError(f"the PPO core needs discrete actions; {type(env).__name__} has continuous ones")
    p_axis = 0 if city_batch else None
    on_params = lambda f: jax.vmap(f) if city_batch else f
    action_mask = on_params(lambda p: env.agents(p).action_mask)(env_params)  # (R, A) or (B, R, A)
    agent_mask = on_params(lambda p: env.agents(p).mask)(env_params)  # (R,) or (B, R)
    prior = on_params(lambda p: env.agents(p).logit_prior)(env_params)  # (A,) or (B, A)
    if city_batch:
        prior = prior[:, None, :]  # broadcast over agents
        B = int(agent_mask.shape[0])
        if config.rollout_steps % config.minibatches:
            raise ValueError(f"PPOConfig: rollout_steps ({config.rollout_steps}) must be a multiple of "
                             f"minibatches ({config.minibatches}) (minibatches split the time axis)")
    else:
        B = config.num_envs
    T = config.rollout_steps
    optimizer = make_optimizer(config.max_grad_norm)
    reset = jax.vmap(env.reset, in_axes=(0, p_axis))
    global_state = jax.vmap(env.global_state, in_axes=(0, p_axis))
    obs_shape = jax.eval_shape(lambda k: reset(jax.random.split(k, B), env_params)[0], jax.random.PRNGKey(0)).shape
    if hooks is None and hasattr(policy, "hooks"):
        hooks = policy.hooks(obs_dim=obs_shape[-1], agent_mask=agent_mask, num_envs=B, rollout_steps=T)
    hooks = hooks or AlgoHooks()
    n_agents = jnp.maximum(agent_mask.sum(), 1)
    total_agents = n_agents if city_batch else B * n_agents  # real agent-rows per rollout step
    distinct = config.distinct_observations and runs_per_distinct_observation(policy, env)
    observe_distinct = jax.vmap(env.distinct_observations, in_axes=(0, p_axis))

    def network_input(env_state, obs):
        """(observations, index) the networks read: the distinct ones where they may, else every agent's."""
        return observe_distinct(env_state, env_params) if distinct else (obs, None)

    def init(key, hyper: Hyper) -> RunnerState:
        k_env, k_pol, k_run, k_extra = jax.random.split(key, 4)
        obs, env_state = reset(jax.random.split(k_env, B), env_params)
        gstate = global_state(env_state, env_params)
        params = policy.init(k_pol, obs.shape[-1], gstate.shape[-1])
        opt_state = set_lr(optimizer.init(params), hyper.lr)
        return RunnerState(params=params, opt_state=opt_state, env_state=env_state, obs=obs, key=k_run,
                           update=jnp.zeros((), jnp.int32), groups=policy.groups(), hyper=hyper,
                           extra=hooks.init(k_extra, params))

    def env_step(carry, _):
        runner, reset_state, reset_obs = carry
        key, k_act, k_env = jax.random.split(runner.key, 3)
        gstate = global_state(runner.env_state, env_params)
        net_obs, index = network_input(runner.env_state, runner.obs)
        action, logp, value = sample_actions(k_act, policy, runner.params, runner.groups, net_obs, gstate,
                                             action_mask, prior, index)
        obs, env_state, reward, done, info = jax.vmap(
            lambda k, s, a, p, rs, ro: step_auto_reset(env, k, s, a, p, ro, rs), in_axes=(0, 0, 0, p_axis, 0, 0))(
            jax.random.split(k_env, B), runner.env_state, action, env_params, reset_state, reset_obs)
        learn_reward = jax.vmap(env.learning_reward, in_axes=(0, 0, 0, 0, p_axis, None))(
            runner.env_state, action, reward, info, env_params, runner.hyper.shaping) * config.reward_scale
        trans = Transition(net_obs, gstate, action, logp, value, learn_reward, done, index)
        stats = env.step_stats(info, reward, env_params)
        runner = runner.replace(key=key, env_state=env_state, obs=obs)
        return (runner, reset_state, reset_obs), (trans, stats)

    def minibatches(key, data):
        """Minibatches (leading axis) of a (T, B, ...) rollout: random (time, env)
        samples, or with `city_batch` random time steps of every city."""
        if city_batch:
            steps = jax.random.permutation(key, T).reshape(config.minibatches, T // config.minibatches)
            return jax.tree.map(lambda x: jnp.take(x, steps, axis=0), data)
        n = T * B
        flat = jax.tree.map(lambda x: x.reshape((n,) + x.shape[2:]), data)
        perm = jax.random.permutation(key, n)
        return jax.tree.map(lambda x: x[perm].reshape((config.minibatches, n // config.minibatches) + x.shape[1:]),
                            flat)

    def update(runner: RunnerState, _):
        key, k_reset = jax.random.split(runner.key)
        reset_obs, reset_state = reset(jax.random.split(k_reset, B), env_params)
        (runner, _, _), (traj, stats) = jax.lax.scan(env_step, (runner.replace(key=key), reset_state, reset_obs),
                                                     None, T)
        gstate = global_state(runner.env_state, env_params)
        last_obs, last_index = network_input(runner.env_state, runner.obs)
        _, last_value = per_agent(policy, runner.params, runner.groups, last_obs, gstate, last_index)
        adv, ret = gae(traj.reward, traj.value, traj.done, last_value, runner.hyper.gamma, runner.hyper.gae_lambda)

        def epoch(carry, _):
            params, opt_state, key = carry
            key, k_perm = jax.random.split(key)

            def minibatch(carry, mb):
                params, opt_state, aux = sgd_step(optimizer, policy, runner.groups, runner.hyper, action_mask, prior,
                                                  agent_mask, config.value_clip, *carry, *mb)
                return (params, opt_state), aux

            (params, opt_state), aux = jax.lax.scan(minibatch, (params, opt_state),
                                                    minibatches(k_perm, (traj, adv, ret)))
            return (params, opt_state, key), aux

        key, k_epochs = jax.random.split(runner.key)
        opt_state = set_lr(runner.opt_state, runner.hyper.lr)
        (params, opt_state, _), aux = jax.lax.scan(epoch, (runner.params, opt_state, k_epochs), None, config.epochs)
        runner = runner.replace(params=params, opt_state=opt_state, key=key, update=runner.update + 1)
        runner, hook_metrics = hooks.after_update(runner, traj)
        s = jax.tree.map(jnp.sum, stats)
        metrics = {k: v.mean() for k, v in aux.items()}
        metrics.update(env.training_metrics(s, B))
        metrics.update(episode_return=s["reward"] / total_agents * (env.episode_length / T), **hook_metrics)
        return runner, metrics

    def update_chunk(runner: RunnerState, num_updates: int):
        return jax.lax.scan(update, runner, None, num_updates)

    return init, update_chunk


class AlgoHooks:
    """Algorithm-specific state carried through training (HAG-PS regrouping)."""

    def init(self, key, params):
        return None

    def after_update(self, runner: RunnerState, traj: Transition):
        return runner, {}




def _train_fns(env, env_params, policy, config):
    return make_train(env, env_params, policy, PPOConfig(
        num_envs=config.num_envs, rollout_steps=config.rollout_steps, epochs=config.epochs,
        minibatches=config.minibatches, max_grad_norm=config.max_grad_norm, reward_scale=config.reward_scale,
        distinct_observations=config.distinct_observations))


def _hyper(config, shaping: dict, algo: dict) -> Hyper:
    return Hyper.make(lr=config.lr, ent_coef=config.ent_coef, clip_eps=config.clip_eps, vf_coef=config.vf_coef,
                      gamma=config.gamma, gae_lambda=config.gae_lambda, shaping=shaping, **algo)


def _validate(config) -> None:
    batch = config.num_envs * config.rollout_steps
    check_fields([(batch % config.minibatches == 0, "minibatches", f"must divide num_envs x rollout_steps = {batch}")])


PPO = LearnerCore(name="ppo", action_kind="discrete",
                  traced=("lr", "ent_coef", "clip_eps", "vf_coef", "gamma", "gae_lambda"),
                  make_train=_train_fns, hyper=_hyper, validate=_validate)
