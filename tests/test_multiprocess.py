"""Two processes on localhost, one JAX program (`jaxmob.distributed`): the data-parallel trainer
over cities and a sweep split over both give the single-process results.

Each process is this file run as `python tests/test_multiprocess.py worker ID PORT` with one CPU
device; the gloo collectives carry the all-reduces between them. Process 0 prints one JSON line.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _diff(a, b) -> float:
    import jax

    return max(float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def worker(process_id: int, port: int) -> None:
    from jaxmob.distributed import gather, initialize

    initialize(f"localhost:{port}", 2, process_id)
    import jax
    import jax.numpy as jnp

    from jaxmob.algos.policies import SharingPolicy
    from jaxmob.algos.ppo import Hyper, PPOConfig, make_train
    from jaxmob.core.sharding import batch_mesh, replicate, shard_batch
    from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv
    from jaxmob.envs.rebalance.batch import stack_params
    from jaxmob.envs.rebalance.city.sample import CitySpec, sample_cities
    from jaxmob.parallel import jit_dp_train, make_dp_train, shard_sweep

    mesh = batch_mesh()  # both processes' devices
    local = batch_mesh(devices=jax.local_devices())
    spec = CitySpec(r_max=9, cols=(2, 3), rows=(2, 3), hotspots=(0, 1), trips_per_region=(60.0, 120.0))
    env, params = stack_params(RebalanceEnv(RebalanceConfig(horizon=12)), sample_cities(jax.random.key(0), spec, 8))
    first = jax.tree.map(lambda x: x[0], params)
    report = {"processes": jax.process_count(), "devices": jax.device_count(), "mesh": int(mesh.size)}

    # one policy, data-parallel over 8 cities: 4 on each process, one update
    policy = SharingPolicy("share_all", 9, env.num_actions(first), (16,))
    config = PPOConfig(rollout_steps=8, epochs=2, minibatches=2)
    out = {}
    for name, m in (("one", local), ("two", mesh)):
        init, update = jit_dp_train(*make_dp_train(env, policy, config, m), m)
        p = shard_batch(params, m)
        runner = init(replicate(jax.random.key(3), m), replicate(Hyper.make(lr=1e-3), m), p)
        runner, metrics = update(runner, p)
        out[name] = gather((runner.params, runner.opt_state, runner.env_state, metrics))
    report["dp_params_diff"] = _diff(out["one"][0], out["two"][0])
    report["dp_opt_diff"] = _diff(out["one"][1], out["two"][1])
    report["dp_env_exact"] = all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(out["one"][2]), jax.tree.leaves(out["two"][2])))
    report["dp_return"] = [float(out[k][3]["episode_return"]) for k in ("one", "two")]
    report["dp_trained"] = _diff(out["one"][0], gather(init(replicate(jax.random.key(3), mesh), replicate(Hyper.make(lr=1e-3), mesh), p).params)) > 0

    # a sweep of 4 runs (learning rates), 2 on each process, no communication
    policy = SharingPolicy("share_all", 9, env.num_actions(first), (8,))
    init, chunk = make_train(env, jax.tree.map(jnp.asarray, first), policy,
                             PPOConfig(num_envs=2, rollout_steps=4, epochs=1, minibatches=2))
    keys = jax.random.split(jax.random.key(5), 4)
    hypers = jax.tree.map(lambda *x: jnp.stack(x), *[Hyper.make(lr=lr) for lr in (1e-4, 3e-4, 1e-3, 3e-3)])
    sweeps = {}
    for name, m in (("one", local), ("two", mesh)):
        init_runs, chunk_runs = shard_sweep(init, chunk, m)
        runs = chunk_runs(init_runs(shard_batch(keys, m), shard_batch(hypers, m)), 1)
        sweeps[name] = gather(runs)
    report["sweep_diff"] = _diff(sweeps["one"], sweeps["two"])
    report["sweep_runs_differ"] = _diff(jax.tree.map(lambda x: x[0], sweeps["one"][0].params),
                                        jax.tree.map(lambda x: x[3], sweeps["one"][0].params)) > 0
    if process_id == 0:
        print(json.dumps(report), flush=True)
    jax.distributed.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_give_the_single_process_result():
    port = _free_port()
    from jaxmob.core.sharding import cpu_devices_env

    env = cpu_devices_env(1)  # one device each
    procs = [subprocess.Popen([sys.executable, __file__, "worker", str(i), str(port)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(err[-3000:] for _, err in outs)
    report = json.loads(outs[0][0].strip().splitlines()[-1])
    assert report["processes"] == 2 and report["devices"] == report["mesh"] == 2
    # the data-parallel update: the same numbers up to the order of float additions
    assert report["dp_trained"] and report["dp_env_exact"]
    assert report["dp_params_diff"] < 1e-5 and report["dp_opt_diff"] < 1e-5
    assert abs(report["dp_return"][0] - report["dp_return"][1]) < 1e-3 * max(1.0, abs(report["dp_return"][0]))
    # the sweep: independent runs, no communication (two compilations may round differently)
    assert report["sweep_runs_differ"] and report["sweep_diff"] < 1e-6


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    worker(int(sys.argv[2]), int(sys.argv[3]))
