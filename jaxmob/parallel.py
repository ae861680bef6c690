"""Many runs and one policy on many cities, on many devices, with `jax.sharding`.

The mesh helpers and the pure city-batch rollout (`make_city_rollout`, `shard_batched`) live
in `jaxmob.core.sharding`; this module adds the trainers on top:

1. `shard_sweep` / `make_city_sweep`: the vmapped sweep trainer. Each run has its own policy,
   optimiser and environments (no gradient reduction between runs); runs are split over
   devices with `shard_map`, no communication at all.
2. `make_dp_train`: ONE policy trained on B cities at once (data parallel), through the one PPO
   core (`ppo.make_train(..., city_batch=True)`, hooks and all: HAG-PS regroups here as it does
   on one city). Policy parameters, Adam state and the key are replicated; environment states
   and city params are split over devices. The update is ordinary global-batch code: rollouts
   of every city, GAE, then PPO epochs on minibatches of *time steps* (all cities in every
   minibatch), the loss a masked mean over every real agent of every city. Under `jit`, XLA's
   partitioner splits that computation along the city axis and inserts the all-reduces of the
   partial sums (loss terms, advantage statistics and hence the gradient), so every device
   applies the same averaged update. Why not `shard_map` + `pmean` of per-device gradients:
   the loss is a ratio of sums (masked means, advantage normalisation), and devices hold
   different numbers of real agents, so a mean of per-device means is not the gradient of the
   global loss. The global-code version is the single-device program, exactly; only the order
   of float additions differs. The data-parallel trainer pays the all-reduces of the env's
   data-dependent loops (see `core.sharding`); the city-batch benchmarks measure the rollout alone.

The batch size must be a multiple of the device count (`ValueError` otherwise). An
environment's own package builds a batch of its params for many cities (e.g.
`jaxmob.envs.rebalance.batch.stack_params`).
"""
from __future__ import annotations


import jax
from jax.sharding import Mesh

from .algos.ppo import Hyper, PPOConfig, RunnerState, make_train
from .core.sharding import batch_sharding, batch_size, check_divisible, replicated, shard_batched


# ----------------------------------------------------------------------- (b) sweeps: independent runs
def shard_sweep(init, update_chunk, mesh: Mesh | None):
    """The sweep trainer of `jaxmob.sweep` split over devices.

    Returns `(init_runs(keys, hypers), chunk_runs(runners, num_updates))`, both
    jitted, vmapped over runs and (with a mesh) split over devices; every run
    has its own parameters, so no gradient crosses devices."""
    init_runs = shard_batched(jax.vmap(init), mesh)
    chunk_runs = shard_batched(jax.vmap(update_chunk, in_axes=(0, None)), mesh, static_argnums=(1,))
    return init_runs, chunk_runs


def make_city_sweep(env, policy, config: PPOConfig):
    """The fused trainer with the city as data: `(init(key, hyper, env_params),
    chunk(runner, env_params, num_updates))`, so `vmap` trains one independent
    policy per (city, seed, hyper) — e.g. through `shard_sweep`-style splitting
    with `shard_batched(jax.vmap(chunk, in_axes=(0, 0, None)), mesh, static_argnums=(2,))`."""

    def init(key, hyper, env_params):
        return make_train(env, env_params, policy, config)[0](key, hyper)

    def chunk(runner, env_params, num_updates: int):
        return make_train(env, env_params, policy, config)[1](runner, num_updates)

    return init, chunk


# ----------------------------------------------------------------------- (c) data-parallel PPO
def make_dp_train(env, policy, config: PPOConfig, mesh: Mesh | None = None):
    """ONE policy trained on a batch of cities (one environment per city).

    Returns `(init(key, hyper, env_params), update(runner, env_params))`; both
    pure and jittable, `update` performs one PPO update of the one PPO core
    (`make_train(..., city_batch=True)`: rollout of `config.rollout_steps`
    steps in every city, GAE, `config.epochs` epochs of `config.minibatches`
    minibatches along time, then the policy's hooks) and returns
    `(runner, metrics)` with the same metric names as `make_train`.
    `config.num_envs` is ignored: the batch is the cities. With a `mesh`, the
    city batch must split evenly over its devices; use `jit_dp_train` to place
    inputs and outputs.
    """
    if config.rollout_steps % config.minibatches:
        raise ValueError(f"PPOConfig: rollout_steps ({config.rollout_steps}) must be a multiple of "
                         f"minibatches ({config.minibatches}) (minibatches split the time axis)")

    def init(key, hyper: Hyper, env_params) -> RunnerState:
        return make_train(env, env_params, policy, config, city_batch=True)[0](key, hyper)

    def update(runner: RunnerState, env_params):
        if mesh is not None:
            check_divisible(batch_size(runner.obs), mesh, "city batch")
        runner, metrics = make_train(env, env_params, policy, config, city_batch=True)[1](runner, 1)
        return runner, jax.tree.map(lambda m: m[0], metrics)

    return init, update


def runner_shardings(mesh: Mesh) -> RunnerState:
    """Placement of a data-parallel runner: environments split, the rest replicated."""
    rep, bat = replicated(mesh), batch_sharding(mesh)
    return RunnerState(params=rep, opt_state=rep, env_state=bat, obs=bat, key=rep, update=rep, groups=rep,
                       hyper=rep, extra=rep)


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
    obs, env_state = jax.vmap(env.reset)(jax.random.split(key, batch_size(runner.obs)), env_params)
    return runner.replace(env_state=env_state, obs=obs)
