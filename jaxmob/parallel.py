"""Many cities and many runs on many devices, with `jax.sharding`.

Everything here lives on a 1-D device mesh with one axis, 'batch', and splits
the leading axis of a batch (cities, seeds or sweep runs) over it:

1. `make_city_rollout` + `shard_batched`: B cities stepped for n steps. Cities
   are independent, so each device runs its B/D cities with `shard_map` and no
   communication at all.
2. `shard_sweep` / `make_city_sweep`: the vmapped sweep trainer. Each run has
   its own policy, optimiser and environments (no gradient reduction between
   runs); runs are split over devices the same way.
3. `make_dp_train`: ONE policy trained on B cities at once (data parallel).
   Policy parameters, Adam state and the key are replicated; environment states
   and city params are split over devices. An update is
     a. rollout + GAE of every city with the current policy (`shard_map`, local:
        each city draws from its own key, so results do not depend on D);
     b. PPO epochs on minibatches of *time steps* (all cities in every
        minibatch), written as ordinary global-batch code: the loss is the
        masked mean over every real agent of every city. Under `jit`, XLA's
        partitioner splits that computation along the city axis and inserts the
        all-reduces of the partial sums (loss terms, advantage statistics and
        hence the gradient), so every device applies the same averaged update.
   Why not `shard_map` + `pmean` of per-device gradients: the loss is a ratio of
   sums (masked means, advantage normalisation), and devices hold different
   numbers of real agents, so a mean of per-device means is not the gradient
   of the global loss. The global-code version is the single-device program,
   exactly; only the order of float additions differs.

Why `shard_map` (not `jit` with sharded inputs) for rollouts: the environment
has data-dependent `while_loop`s (Poisson inversion, overflow search). Under
`vmap` their stop test is "any city still searching", and an auto-sharded
`jit` turns it into a cross-device all-reduce per loop iteration. In
`shard_map` each device stops on its own cities (`check_vma=False` because the
env's loops start from replicated constants, which is harmless here).

The batch size must be a multiple of the device count (`ValueError` otherwise).
`stack_params` builds a batch of environment params for a list of cities.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from .algos.heuristics import random_policy
from .algos.ppo import (Hyper, PPOConfig, RunnerState, Transition, _set_lr, gae, make_optimizer, sgd_step,
                        learning_reward, sample_actions)
from .city.core import City
from .city.pad import stack_cities, take_city
from .envs.base import step_auto_reset

BATCH = "batch"
BATCHED = PartitionSpec(BATCH)
REPLICATED = PartitionSpec()


# ----------------------------------------------------------------------- meshes and placement
def batch_mesh(num_devices: int | None = None, devices: Sequence | None = None) -> Mesh:
    """A 1-D mesh named 'batch' over the first `num_devices` devices (default all).

    Auto axis types: shardings are hints for XLA's partitioner (GSPMD-style),
    not part of array types, so unannotated library code runs unchanged."""
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices) if num_devices is None else int(num_devices)
    if not 1 <= n <= len(devices):
        raise ValueError(f"batch_mesh: num_devices must lie in [1, {len(devices)}], got {num_devices}")
    return jax.make_mesh((n,), (BATCH,), axis_types=(AxisType.Auto,), devices=devices[:n])


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over the mesh's 'batch' axis."""
    return NamedSharding(mesh, BATCHED)


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device."""
    return NamedSharding(mesh, REPLICATED)


def batch_size(tree) -> int:
    """The common leading dimension of a batched pytree (ValueError if leaves disagree)."""
    sizes = {int(np.shape(x)[0]) for x in jax.tree.leaves(tree) if np.ndim(x) > 0}
    if len(sizes) != 1:
        raise ValueError(f"batched pytree leaves disagree on the leading (batch) axis: {sorted(sizes)}")
    return sizes.pop()


def check_divisible(size: int, mesh: Mesh, what: str = "batch") -> None:
    devices = mesh.shape[BATCH]
    if size % devices:
        raise ValueError(f"{what} of {size} does not split over {devices} devices; "
                         f"use a multiple of {devices} (e.g. repeat cities with `tile_batch`)")


def shard_batch(tree, mesh: Mesh):
    """Place a batched pytree with its leading axis split over the mesh."""
    check_divisible(batch_size(tree), mesh)
    return jax.device_put(tree, batch_sharding(mesh))


def replicate(tree, mesh: Mesh):
    return jax.device_put(tree, replicated(mesh))


def tile_batch(tree, size: int):
    """A batch of `size` made by cycling through the given batch (NumPy, on host):
    for throughput runs with more cities than distinct ones were built."""
    n = batch_size(tree)
    index = np.arange(size) % n
    return jax.tree.map(lambda x: np.asarray(x)[index], tree)


# ----------------------------------------------------------------------- batched env params
def stack_params(env, cities, *, days: Sequence | None = None, pipeline_steps: int | None = None,
                 max_trips: int | None = None, validate: bool = True, **make_params_kw):
    """`(env_b, params)`: one params batch for many cities, and the env to step it with.

    `cities` is a list of Cities (padded to the largest; see `stack_cities`) or
    an already stacked batch (e.g. from `sample_city` under `vmap`). A batch
    needs one static P (pipeline steps) and M (trip slots), so `env_b` is `env`
    with both fixed: by default the largest per-city default (the city's
    longest travel or move time; the contract's slot quantile), so no city is
    clipped or truncated more than alone. `days` (replay mode) holds one list
    of DayTrips per city, all of the same length. Tables are built per city by
    `env.make_params` (NumPy, ~50 ms for 64 regions) and stacked; leaves are
    NumPy arrays, ready for `shard_batch`. Each city is first checked by
    `City.create` (`validate=False` skips that, e.g. for trusted batches).
    """
    from .envs.rebalance import RebalanceEnv, default_max_trips, default_pipeline_steps

    batch = jax.tree.map(np.asarray, cities if isinstance(cities, City) else stack_cities(cities))
    n = batch_size(batch)
    singles = [take_city(batch, i, validate=validate) for i in range(n)]
    if days is not None and len(days) != n:
        raise ValueError(f"stack_params: days must hold one list of DayTrips per city ({n}), got {len(days)}")
    per_city_days = list(days) if days is not None else [None] * n
    cfg = env.config
    P = pipeline_steps or cfg.pipeline_steps or max(default_pipeline_steps(c, cfg.relocation_delay) for c in singles)
    M = max_trips or cfg.max_trips_per_step or max(
        default_max_trips(c, d or [], float(np.max(make_params_kw.get("demand_scale", 1.0))), cfg.mode)
        for c, d in zip(singles, per_city_days))
    env_b = RebalanceEnv(replace(cfg, pipeline_steps=int(P), max_trips_per_step=int(M)))
    params = [env_b.make_params(c, days=d, **make_params_kw) for c, d in zip(singles, per_city_days)]
    return env_b, jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *params)


# ----------------------------------------------------------------------- (a) batched env stepping
def make_city_rollout(env, steps: int, policy=random_policy, start_step: int = 0):
    """`rollout(keys, params) -> (states, totals)`: every city of the batch runs
    `steps` steps from its start state under `policy` (default: uniform over
    valid actions), all randomness from its own key; `totals` holds per-city
    sums of reward, served, demand and relocated, and an observation checksum
    (so XLA computes the observations a learner would read). `start_step`
    moves the start clock (e.g. to the morning peak, for benchmarks)."""

    def one_city(key, params):
        k_reset, key = jax.random.split(key)
        _, state = env.reset(k_reset, params)
        if start_step:
            state = state.replace(t=jnp.asarray(start_step, state.t.dtype))

        def step(carry, _):
            state, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            action = policy(k_act, state, params, env)
            obs, state, reward, _, info = env.step(k_env, state, action, params)
            row = dict(reward=reward.sum(), served=info["served"].sum(), demand=info["demand"].sum(),
                       relocated=info["relocated"].sum(), obs=obs.sum())
            return (state, key), row

        (state, _), rows = jax.lax.scan(step, (state, key), None, steps)
        return state, jax.tree.map(jnp.sum, rows)

    return jax.vmap(one_city)


def shard_batched(fn, mesh: Mesh | None, static_argnums: tuple = ()):
    """`jit(fn)` for a function whose arguments and outputs are all batched on
    their leading axis (apart from `static_argnums`); with a mesh, each device
    runs `fn` on its slice of the batch inside `shard_map` (no communication).

    `fn` must treat batch elements independently (a `vmap`). Inputs and outputs
    are split over the mesh ('batch' axis); pass inputs placed by `shard_batch`
    to avoid a copy."""
    static_argnums = tuple(static_argnums)
    if mesh is None:
        return jax.jit(fn, static_argnums=static_argnums)

    def split_run(*args):
        static = {i: args[i] for i in static_argnums}
        dynamic = [a for i, a in enumerate(args) if i not in static]
        for a in dynamic:
            check_divisible(batch_size(a), mesh)

        def local(*dyn):
            it = iter(dyn)
            return fn(*[static[i] if i in static else next(it) for i in range(len(args))])

        return jax.shard_map(local, mesh=mesh, in_specs=BATCHED, out_specs=BATCHED, check_vma=False)(*dynamic)

    sharding = batch_sharding(mesh)
    return jax.jit(split_run, static_argnums=static_argnums, in_shardings=sharding, out_shardings=sharding)


# ----------------------------------------------------------------------- (b) sweeps: independent runs
def shard_sweep(init, update_chunk, mesh: Mesh | None):
    """The sweep trainer of `jaxmob.sweep` split over devices.

    Returns `(init_runs(keys, hypers), chunk_runs(runners, num_updates))`, both
    jitted, vmapped over runs and (with a mesh) split over devices; every run
    has its own parameters, so no gradient crosses devices."""
    init_runs = shard_batched(jax.vmap(init), mesh)
    chunk_runs = shard_batched(jax.vmap(update_chunk, in_axes=(0, None)), mesh, static_argnums=(1,))
    return init_runs, chunk_runs


def make_city_sweep(env, policy, config: PPOConfig, hooks_fn=None):
    """The fused trainer with the city as data: `(init(key, hyper, env_params),
    chunk(runner, env_params, num_updates))`, so `vmap` trains one independent
    policy per (city, seed, hyper) — e.g. through `shard_sweep`-style splitting
    with `shard_batched(jax.vmap(chunk, in_axes=(0, 0, None)), mesh, static_argnums=(2,))`."""
    from .algos.ppo import make_train

    def build(env_params):
        hooks = hooks_fn(env, env_params, config) if hooks_fn else None
        return make_train(env, env_params, policy, config, hooks)

    def init(key, hyper, env_params):
        return build(env_params)[0](key, hyper)

    def chunk(runner, env_params, num_updates: int):
        return build(env_params)[1](runner, num_updates)

    return init, chunk


# ----------------------------------------------------------------------- (c) data-parallel PPO
def _expand_city_mask(mask, extra_axes: int):
    """(B, R, ...) per-city mask -> (B, 1, ..., R, ...) to broadcast over time axes."""
    return mask.reshape(mask.shape[:1] + (1,) * extra_axes + mask.shape[1:])


def make_dp_train(env, policy, config: PPOConfig, mesh: Mesh | None = None):
    """ONE policy trained on a batch of cities (one environment per city).

    Returns `(init(key, hyper, env_params), update(runner, env_params))`; both
    pure and jittable, `update` performs one PPO update (rollout of
    `config.rollout_steps` steps in every city, GAE, `config.epochs` epochs of
    `config.minibatches` minibatches along time) and returns `(runner, metrics)`
    with the same metric names as `make_train`. `config.num_envs` is ignored:
    the batch is the cities. With a `mesh`, rollouts run per device in
    `shard_map` and the learning step is partitioned by XLA (module doc); use
    `jit_dp_train` to place inputs and outputs.
    """
    if config.rollout_steps % config.minibatches:
        raise ValueError(f"PPOConfig: rollout_steps ({config.rollout_steps}) must be a multiple of "
                         f"minibatches ({config.minibatches}) (minibatches split the time axis)")
    optimizer = make_optimizer(config.max_grad_norm)
    T = config.rollout_steps

    def init(key, hyper: Hyper, env_params) -> RunnerState:
        k_env, k_pol, k_run = jax.random.split(key, 3)
        B = batch_size(env_params.city.region_mask)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_env, B), env_params)
        gstate = jax.vmap(env.global_state)(env_state, env_params)
        params = policy.init(k_pol, obs.shape[-1], gstate.shape[-1])
        opt_state = _set_lr(optimizer.init(params), hyper.lr)
        return RunnerState(params=params, opt_state=opt_state, env_state=env_state, obs=obs, key=k_run,
                           update=jnp.zeros((), jnp.int32), groups=policy.groups(), hyper=hyper, extra=None)

    def city_rollout(policy_params, groups, hyper, key, env_state, obs, env_params):
        """One city: T steps with auto-reset, then GAE; all outputs city-local."""
        k_reset, key = jax.random.split(key)
        reset_obs, reset_state = env.reset(k_reset, env_params)
        action_mask = env.action_mask(env_params)
        real = env_params.city.region_mask

        def step(carry, _):
            env_state, obs, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            gstate = env.global_state(env_state, env_params)
            action, logp, value = sample_actions(k_act, policy, policy_params, groups, obs, gstate, action_mask)
            next_obs, next_state, reward, done, info = step_auto_reset(env, k_env, env_state, action, env_params,
                                                                       reset_obs, reset_state)
            learn = learning_reward(env, env_params, config, hyper, env_state, action, reward, info["relocated"])
            stats = dict(served=info["served"].sum(), demand=info["demand"].sum(),
                         relocated=info["relocated"].sum(), overflow=info["overflow"].sum(),
                         reward=(reward * real).sum())
            return (next_state, next_obs, key), (Transition(obs, gstate, action, logp, value, learn, done), stats)

        (env_state, obs, _), (traj, stats) = jax.lax.scan(step, (env_state, obs, key), None, T)
        _, last_value = policy.apply(policy_params, groups, obs, env.global_state(env_state, env_params))
        adv, ret = gae(traj.reward, traj.value, traj.done, last_value, hyper.gamma, hyper.gae_lambda)
        return env_state, obs, traj, adv, ret, jax.tree.map(jnp.sum, stats)

    def rollouts(policy_params, groups, hyper, keys, env_state, obs, env_params):
        batched = jax.vmap(city_rollout, in_axes=(None, None, None, 0, 0, 0, 0))
        if mesh is None:
            return batched(policy_params, groups, hyper, keys, env_state, obs, env_params)
        return jax.shard_map(batched, mesh=mesh, check_vma=False, out_specs=BATCHED,
                             in_specs=(REPLICATED, REPLICATED, REPLICATED, BATCHED, BATCHED, BATCHED, BATCHED),
                             )(policy_params, groups, hyper, keys, env_state, obs, env_params)

    def update(runner: RunnerState, env_params):
        B = batch_size(env_params.city.region_mask)
        if mesh is not None:
            check_divisible(B, mesh, "city batch")
        key, k_roll, k_epochs = jax.random.split(runner.key, 3)
        env_state, obs, traj, adv, ret, stats = rollouts(runner.params, runner.groups, runner.hyper,
                                                         jax.random.split(k_roll, B), runner.env_state, runner.obs,
                                                         env_params)
        # traj leaves, adv, ret: (B, T, ...) city-major; minibatches take time steps of every city
        action_mask = _expand_city_mask(jax.vmap(env.action_mask)(env_params), 1)  # (B, 1, R, A)
        agent_mask = _expand_city_mask(env_params.city.region_mask, 1)  # (B, 1, R)
        n_mb = config.minibatches

        def epoch(carry, _):
            params, opt_state, key = carry
            key, k_perm = jax.random.split(key)
            perm = jax.random.permutation(k_perm, T).reshape(n_mb, T // n_mb)

            def minibatch(carry, steps):
                mb = jax.tree.map(lambda x: jnp.take(x, steps, axis=1), (traj, adv, ret))
                params, opt_state, aux = sgd_step(optimizer, policy, runner.groups, runner.hyper, action_mask,
                                                  agent_mask, config.value_clip, *carry, *mb)
                return (params, opt_state), aux

            (params, opt_state), aux = jax.lax.scan(minibatch, (params, opt_state), perm)
            return (params, opt_state, key), aux

        opt_state = _set_lr(runner.opt_state, runner.hyper.lr)
        (params, opt_state, _), aux = jax.lax.scan(epoch, (runner.params, opt_state, k_epochs), None, config.epochs)
        runner = runner.replace(params=params, opt_state=opt_state, env_state=env_state, obs=obs, key=key,
                                update=runner.update + 1)
        s = jax.tree.map(jnp.sum, stats)
        n_agents = jnp.maximum(env_params.city.region_mask.sum(), 1)
        metrics = {k: v.mean() for k, v in aux.items()}
        metrics.update(service_ratio=s["served"] / jnp.maximum(s["demand"], 1.0),
                       episode_return=s["reward"] / n_agents * (env.config.horizon / T),
                       relocated=s["relocated"] / B, overflow=s["overflow"] / B)
        return runner, metrics

    return init, update


def runner_shardings(mesh: Mesh) -> RunnerState:
    """Placement of a data-parallel runner: environments split, the rest replicated."""
    rep, bat = replicated(mesh), batch_sharding(mesh)
    return RunnerState(params=rep, opt_state=rep, env_state=bat, obs=bat, key=rep, update=rep, groups=rep,
                       hyper=rep, extra=None)


def jit_dp_train(init, update, mesh: Mesh | None):
    """Jitted `(init, update)` of `make_dp_train`; with a mesh, env params and
    env states split over devices and everything else replicated (inputs and
    outputs), so consecutive updates never move data between devices."""
    if mesh is None:
        return jax.jit(init), jax.jit(update)
    rep, bat, runner = replicated(mesh), batch_sharding(mesh), runner_shardings(mesh)
    return (jax.jit(init, in_shardings=(rep, rep, bat), out_shardings=runner),
            jax.jit(update, in_shardings=(runner, bat), out_shardings=(runner, rep)))


def restart_cities(env, runner: RunnerState, env_params, key) -> RunnerState:
    """Move a data-parallel runner onto a new batch of cities (same shapes):
    every environment starts a fresh episode of its new city, while the policy,
    optimiser and key carry on. Training on a city distribution redraws the
    batch between updates this way."""
    B = batch_size(env_params.city.region_mask)
    obs, env_state = jax.vmap(env.reset)(jax.random.split(key, B), env_params)
    return runner.replace(env_state=env_state, obs=obs)
