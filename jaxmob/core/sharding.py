"""Many cities on many devices, with `jax.sharding`: a 1-D device mesh with one
axis, 'batch', splitting the leading axis of a batch (cities, seeds or runs).

`make_city_rollout` + `shard_batched` step B cities for n steps: cities are
independent, so each device runs its B/D cities inside `shard_map` with no
communication. Why `shard_map` (not `jit` with sharded inputs): an environment
may have data-dependent `while_loop`s (Poisson inversion, overflow search).
Under `vmap` their stop test is "any city still searching", and an
auto-sharded `jit` turns it into a cross-device all-reduce per loop iteration;
in `shard_map` each device stops on its own cities (`check_vma=False` because
the env's loops start from replicated constants, which is harmless here).

The batch size must be a multiple of the device count (`ValueError` otherwise).
"""
from __future__ import annotations

import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from .rollout import random_policy

BATCH = "batch"
BATCHED = PartitionSpec(BATCH)
REPLICATED = PartitionSpec()


# ----------------------------------------------------------------------- meshes and placement
def cpu_devices_env(count: int, environ=None) -> dict:
    """The environment for a subprocess whose JAX sees `count` CPU devices: XLA_FLAGS keeps the
    caller's other flags and forces the device count (it must be set before JAX starts)."""
    environ = dict(os.environ if environ is None else environ)
    flags = [f for f in environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    return dict(environ, JAX_PLATFORMS="cpu",
                XLA_FLAGS=" ".join(flags + [f"--xla_force_host_platform_device_count={count}"]))


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


def place(tree, sharding: NamedSharding):
    """`tree` on `sharding`. Where the mesh spans other processes' devices (`jax.distributed`),
    every process passes the same whole value and keeps the part on its own devices."""
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def one(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(one, tree)


def shard_batch(tree, mesh: Mesh):
    """Place a batched pytree with its leading axis split over the mesh."""
    check_divisible(batch_size(tree), mesh)
    return place(tree, batch_sharding(mesh))


def replicate(tree, mesh: Mesh):
    return place(tree, replicated(mesh))


def tile_batch(tree, size: int):
    """A batch of `size` made by cycling through the given batch (NumPy, on host):
    for throughput runs with more cities than distinct ones were built."""
    n = batch_size(tree)
    index = np.arange(size) % n
    return jax.tree.map(lambda x: np.asarray(x)[index], tree)


# ----------------------------------------------------------------------- (a) batched env stepping
def make_city_rollout(env, steps: int, policy=random_policy, start_step: int = 0):
    """`rollout(keys, params) -> (states, totals)`: every city of the batch runs
    `steps` steps from its start state under `policy` (default: uniform over
    valid actions), all randomness from its own key; `totals` holds per-city
    sums of the env's `step_stats` (reward and its own counts), and an observation checksum
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
            return (state, key), dict(env.step_stats(info, reward, params), obs=obs.sum())

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
