"""Many hosts: one JAX program over every process's devices (`jax.distributed`).

Call `initialize()` in every process before anything else touches JAX. On a SLURM (or other
cluster JAX detects) allocation it needs no arguments; elsewhere pass the coordinator's
`host:port`, the number of processes and this one's id (or set JAXMOB_COORDINATOR,
JAXMOB_NUM_PROCESSES and JAXMOB_PROCESS_ID). On CPU it selects the gloo collectives, so
processes on one machine or several CPU hosts can all-reduce. After it, `jax.devices()` lists
every process's devices, `jaxmob.core.sharding.batch_mesh()` spans them all and the sharded
trainers of `jaxmob.parallel` (the data-parallel trainer over cities, the sweep split over
devices) run unchanged: each process holds its shard of the cities or runs. `gather` brings a
result to every process's host as NumPy.
"""
from __future__ import annotations

import os

import numpy as np


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None) -> None:
    import jax

    coordinator = coordinator or os.environ.get("JAXMOB_COORDINATOR")
    if num_processes is None and "JAXMOB_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["JAXMOB_NUM_PROCESSES"])
    if process_id is None and "JAXMOB_PROCESS_ID" in os.environ:
        process_id = int(os.environ["JAXMOB_PROCESS_ID"])
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS", "") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)


def gather(tree):
    """Every leaf as a host NumPy array holding the whole global value (PRNG keys as their words),
    on every process: a leaf split over processes is all-gathered."""
    import jax
    from jax.experimental import multihost_utils

    def host(x):
        if not isinstance(x, jax.Array):
            return np.asarray(x)
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        if x.is_fully_addressable:
            return np.asarray(x)
        if x.sharding.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(host, tree)
