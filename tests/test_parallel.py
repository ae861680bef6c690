"""Sharding over devices (`jaxmob.parallel`) gives the single-device results.

The multi-device checks run in a subprocess with 4 forced host devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=4` must be set before jax
is imported), once per session; this file is also that subprocess's script
(`python tests/test_parallel.py worker`), which prints one JSON line.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DEVICES = 4
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------- the worker (runs with 4 devices)
def _small_problem():
    import jax

    from jaxmob.envs.rebalance.city.sample import CitySpec, sample_cities
    from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv
    from jaxmob.envs.rebalance.batch import stack_params

    spec = CitySpec(r_max=9, cols=(2, 3), rows=(2, 3), hotspots=(0, 1), trips_per_region=(60.0, 120.0))
    cities = sample_cities(jax.random.key(0), spec, 8)
    return stack_params(RebalanceEnv(RebalanceConfig(horizon=12)), cities)


def _plain(tree):
    """Host copies with PRNG keys as their raw words (comparable with NumPy)."""
    import jax

    def host(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)

    return [host(x) for x in jax.tree.leaves(tree)]


def _max_diff(a, b) -> float:
    return max((float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0)
               for x, y in zip(_plain(a), _plain(b)))


def _collectives(compiled) -> dict:
    text = compiled.as_text()
    return {k: len(re.findall(rf"\b{k}\(", text)) for k in ("all-reduce", "all-gather", "all-to-all")}


def _check_env(env, params, mesh) -> dict:
    import jax

    from jaxmob.core.sharding import make_city_rollout, shard_batch, shard_batched

    keys = jax.random.split(jax.random.key(1), 8)
    rollout = make_city_rollout(env, 20)
    one = shard_batched(rollout, None)(keys, params)
    split_fn = shard_batched(rollout, mesh)
    sharded_in = (shard_batch(keys, mesh), shard_batch(params, mesh))
    many = split_fn(*sharded_in)
    return dict(exact=all(np.array_equal(x, y) for x, y in zip(_plain(one), _plain(many))),
                served=float(np.sum(_plain(one[1]["served"]))),
                out_devices=len(many[1]["reward"].sharding.device_set),
                collectives=_collectives(split_fn.lower(*sharded_in).compile()))


def _check_dp(env, params, mesh) -> dict:
    import jax

    from jaxmob.algos.policies import SharingPolicy
    from jaxmob.algos.ppo import Hyper, PPOConfig
    from jaxmob.core.sharding import shard_batch
    from jaxmob.parallel import jit_dp_train, make_dp_train

    first = jax.tree.map(lambda x: x[0], params)
    policy = SharingPolicy("share_all", 9, env.num_actions(first), (16,))
    config = PPOConfig(rollout_steps=8, epochs=2, minibatches=2)
    results, compiled = {}, None
    for name, m in (("one", None), ("many", mesh)):
        init, update = jit_dp_train(*make_dp_train(env, policy, config, m), m)
        p = params if m is None else shard_batch(params, m)
        runner = init(jax.random.key(3), Hyper.make(lr=1e-3), p)
        runner, metrics = update(runner, p)
        results[name] = (runner, metrics)
        if m is not None:
            compiled = update.lower(runner, p).compile()
    (r1, m1), (r4, m4) = results["one"], results["many"]
    return dict(metrics_one={k: float(v) for k, v in m1.items()}, metrics_many={k: float(v) for k, v in m4.items()},
                params_diff=_max_diff(r1.params, r4.params), opt_diff=_max_diff(r1.opt_state, r4.opt_state),
                env_exact=all(np.array_equal(x, y) for x, y in zip(_plain(r1.env_state), _plain(r4.env_state))),
                params_changed=_max_diff(r1.params, init(jax.random.key(3), Hyper.make(lr=1e-3), p).params) > 0,
                env_devices=len(jax.tree.leaves(r4.env_state)[0].sharding.device_set),
                params_replicated=all(x.sharding.is_fully_replicated for x in jax.tree.leaves(r4.params)),
                collectives=_collectives(compiled))


def _check_sweep(env, params, mesh) -> dict:
    import jax
    import jax.numpy as jnp

    from jaxmob.algos.policies import SharingPolicy
    from jaxmob.algos.ppo import Hyper, PPOConfig, make_train
    from jaxmob.parallel import shard_sweep

    city_params = jax.tree.map(lambda x: jnp.asarray(x[0]), params)
    policy = SharingPolicy("share_all", 9, env.num_actions(city_params), (8,))
    init, chunk = make_train(env, city_params, policy, PPOConfig(num_envs=2, rollout_steps=4, epochs=1, minibatches=2))
    keys = jax.random.split(jax.random.key(5), 4)
    hypers = jax.tree.map(lambda *x: jnp.stack(x), *[Hyper.make(lr=lr) for lr in (1e-4, 3e-4, 1e-3, 3e-3)])
    out = {}
    for name, m in (("one", None), ("many", mesh)):
        init_runs, chunk_runs = shard_sweep(init, chunk, m)
        out[name] = chunk_runs(init_runs(keys, hypers), 1)
    return dict(diff=_max_diff(out["one"], out["many"]),
                out_devices=len(jax.tree.leaves(out["many"][0].params)[0].sharding.device_set))


def _check_city_sweep(env, params, mesh) -> dict:
    """One independent policy per city (the city is data), split over devices,
    and run 0 equal to the plain trainer on city 0 alone."""
    import jax
    import jax.numpy as jnp

    from jaxmob.algos.policies import SharingPolicy
    from jaxmob.algos.ppo import Hyper, PPOConfig, make_train
    from jaxmob.core.sharding import shard_batch, shard_batched
    from jaxmob.parallel import make_city_sweep

    cities = jax.tree.map(lambda x: jnp.asarray(x[:4]), params)
    first = jax.tree.map(lambda x: x[0], cities)
    policy = SharingPolicy("share_all", 9, env.num_actions(first), (8,))
    config = PPOConfig(num_envs=2, rollout_steps=4, epochs=1, minibatches=2)
    init, chunk = make_city_sweep(env, policy, config)
    keys = jax.random.split(jax.random.key(6), 4)
    hypers = jax.tree.map(lambda *x: jnp.stack(x), *[Hyper.make()] * 4)
    out = {}
    for name, m in (("one", None), ("many", mesh)):
        init_runs = shard_batched(jax.vmap(init), m)
        chunk_runs = shard_batched(jax.vmap(chunk, in_axes=(0, 0, None)), m, static_argnums=(2,))
        c = cities if m is None else shard_batch(cities, m)
        out[name] = chunk_runs(init_runs(keys, hypers, c), c, 1)
    init0, chunk0 = make_train(env, first, policy, config)
    alone = jax.jit(chunk0, static_argnums=1)(jax.jit(init0)(keys[0], Hyper.make()), 1)
    run0 = jax.tree.map(lambda x: x[0], out["one"])
    return dict(diff=_max_diff(out["one"], out["many"]), alone_diff=_max_diff(run0, alone),
                distinct=_max_diff(jax.tree.map(lambda x: x[0], out["one"][1]),
                                   jax.tree.map(lambda x: x[1], out["one"][1])) > 0)


def _check_errors(mesh) -> dict:
    import jax.numpy as jnp

    from jaxmob.core.sharding import shard_batch

    try:
        shard_batch({"x": jnp.zeros((6, 2))}, mesh)
        return dict(indivisible_raises=False)
    except ValueError as err:
        return dict(indivisible_raises="multiple of 4" in str(err))


def worker() -> None:
    import jax

    from jaxmob.core.sharding import batch_mesh

    mesh = batch_mesh()
    env, params = _small_problem()
    report = dict(devices=jax.device_count(), mesh=dict(mesh.shape))
    report["env"] = _check_env(env, params, mesh)
    report["dp"] = _check_dp(env, params, mesh)
    report["sweep"] = _check_sweep(env, params, mesh)
    report["city_sweep"] = _check_city_sweep(env, params, mesh)
    report["errors"] = _check_errors(mesh)
    print(json.dumps(report))


# ----------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def report():
    from jaxmob.core.sharding import cpu_devices_env

    env = cpu_devices_env(DEVICES)
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "worker"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_worker_sees_four_devices(report):
    assert report["devices"] == DEVICES and report["mesh"] == {"batch": DEVICES}


def test_env_stepping_of_a_city_batch_is_identical(report):
    env = report["env"]
    assert env["exact"], "sharded env stepping differs from the single-device run"
    assert env["served"] > 0
    assert env["out_devices"] == DEVICES
    assert env["collectives"] == {"all-reduce": 0, "all-gather": 0, "all-to-all": 0}, "cities must not communicate"


def test_data_parallel_update_matches_single_device(report):
    dp = report["dp"]
    assert dp["env_exact"], "rollouts differ"
    for k, v in dp["metrics_one"].items():
        np.testing.assert_allclose(dp["metrics_many"][k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    assert dp["params_changed"]
    assert dp["params_diff"] < 1e-6 and dp["opt_diff"] < 1e-6
    assert dp["env_devices"] == DEVICES and dp["params_replicated"]
    assert dp["collectives"]["all-reduce"] >= 1, "gradients must be reduced across devices"
    assert dp["collectives"]["all-gather"] == 0


def test_sharded_sweep_matches_single_device(report):
    sweep = report["sweep"]
    assert sweep["diff"] < 1e-6
    assert sweep["out_devices"] == DEVICES


def test_city_sweep_trains_one_policy_per_city(report):
    sweep = report["city_sweep"]
    assert sweep["diff"] < 1e-6, "sharded city sweep differs from the single-device run"
    assert sweep["alone_diff"] < 1e-5, "run 0 differs from training on city 0 alone"
    assert sweep["distinct"], "different cities should give different metrics"


def test_indivisible_batch_is_refused(report):
    assert report["errors"]["indivisible_raises"]


# ----------------------------------------------------------------------- single-device checks (this process)
def test_stack_params_uses_common_static_sizes():
    import jax

    from jaxmob.envs.rebalance.city import synthetic_city
    from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv
    from jaxmob.envs.rebalance.batch import stack_params
    from jaxmob.core.sharding import tile_batch

    cities = [synthetic_city("square", 2, 2, seed=0, trips_per_day=500.0),
              synthetic_city("square", 5, 3, seed=1, trips_per_day=4000.0, cell_km=2.0)]
    env = RebalanceEnv(RebalanceConfig())
    alone = [env.make_params(c) for c in cities]
    env_b, params = stack_params(env, cities)
    assert env_b.config.pipeline_steps == max(p.pipeline_steps for p in alone)
    assert env_b.config.max_trips_per_step == max(p.max_trips for p in alone)
    assert params.dest_keep.shape[:2] == (2, 24) and params.city.region_mask.shape == (2, 15)
    np.testing.assert_array_equal(np.asarray(params.city.region_mask).sum(1), [4, 15])
    tiled = tile_batch(params, 5)
    np.testing.assert_array_equal(np.asarray(tiled.city.capacity)[4], np.asarray(params.city.capacity)[0])
    # the batch steps under vmap
    obs, state = jax.vmap(env_b.reset)(jax.random.split(jax.random.key(0), 2), params)
    assert obs.shape[:2] == (2, 15)



def test_restart_cities_moves_training_onto_a_new_batch():
    """Training on a city distribution swaps the city batch between updates:
    the environments restart on the new cities, the policy carries on, and
    the next update runs without recompiling."""
    import chex
    import jax

    from jaxmob.algos.policies import SharingPolicy
    from jaxmob.algos.ppo import Hyper, PPOConfig
    from jaxmob.parallel import make_dp_train, restart_cities

    env, params = _small_problem()
    first, second = (jax.tree.map(lambda x: x[i:i + 4], params) for i in (0, 4))
    policy = SharingPolicy("ippo", 9, env.num_actions(jax.tree.map(lambda x: x[0], params)), (8,))
    init, update = make_dp_train(env, policy, PPOConfig(rollout_steps=4, epochs=1, minibatches=2))
    update = jax.jit(chex.assert_max_traces(update, n=1))
    runner, _ = update(jax.jit(init)(jax.random.key(0), Hyper.make(lr=1e-3), first), first)
    moved = jax.jit(lambda r, p, k: restart_cities(env, r, p, k))(runner, second, jax.random.key(1))
    fresh_obs, fresh_state = jax.vmap(env.reset)(jax.random.split(jax.random.key(1), 4), second)
    np.testing.assert_array_equal(np.asarray(moved.obs), np.asarray(fresh_obs))
    np.testing.assert_array_equal(np.asarray(moved.env_state.inventory), np.asarray(second.city.init_inventory))
    assert int(moved.env_state.t.max()) == 0 and int(runner.env_state.t.max()) == 4
    assert _max_diff(moved.params, runner.params) == 0.0
    moved, metrics = update(moved, second)
    assert np.isfinite(float(metrics["service_ratio"])) and int(moved.update) == 2


def test_hagps_regroups_under_data_parallel_training():
    """The data-parallel trainer is the one PPO core with the policy's hooks:
    HAG-PS trains its encoder and splits groups on a batch of cities too."""
    import jax

    from jaxmob.algos.hagps import HagpsPolicy
    from jaxmob.algos.ppo import Hyper, PPOConfig
    from jaxmob.parallel import make_dp_train

    env, params = _small_problem()
    cities = jax.tree.map(lambda x: x[:2], params)
    policy = HagpsPolicy(num_agents=9, num_actions=env.num_actions(jax.tree.map(lambda x: x[0], params)),
                         hidden=(8,), g_max=2, l_max=4, id_dim=2, head_hidden=8, window=4, latent_dim=2,
                         encoder_hidden=8, encoder_steps=1, warmup=0, period_min=1, period_max=2, adapt_global=False)
    init, update = make_dp_train(env, policy, PPOConfig(rollout_steps=4, epochs=1, minibatches=2))
    runner = jax.jit(init)(jax.random.key(0), Hyper.make(lr=1e-3, d_split=-1.0, tau_merge=-1.0), cities)
    update = jax.jit(update)
    events, splits = [], []
    for _ in range(2):
        runner, metrics = update(runner, cities)
        events.append(int(metrics["regroup_event"]))
        splits.append(int(metrics["local_splits"]))
    assert events == [1, 1] and sum(splits) >= 1, (events, splits)
    assert int(runner.groups.local_active.sum()) == 1 + sum(splits)
    assert runner.extra is not None and int(runner.extra.seen) == 2


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    worker()
