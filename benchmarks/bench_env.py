"""Throughput of the JAX rebalancing env (Poisson mode, random actions) vs the NumPy reference.

    python benchmarks/bench_env.py [--scenario manhattan-citibike] [--batch 1 64 1024] [--reps 5]

Each measurement is one jitted `lax.scan` of `--steps` steps over a `vmap` of
B cities sharing one city's params, timed with `block_until_ready` after a
separate compile; the table reports medians over `--reps` runs. The NumPy
reference steps one city at a time with the same dynamics (its draws from
NumPy's generator). Never asserts a time: read the table.
"""
from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv
from jaxmob.envs.rebalance.reference import ReferenceRebalance

def load_city(name: str):
    """The named bundled scenario's City (see `python -m jaxmob info`)."""
    from jaxmob.envs.rebalance.city import load

    return load(name).city, name


def make_rollout(env: RebalanceEnv, params, batch: int, steps: int):
    """A jitted function running `steps` batched steps with pseudo-random actions.

    Actions come from a fixed random table (row chosen by step and city) so the
    timing measures the env, not action sampling; observations are summed into
    the output so XLA cannot drop their computation.
    """
    R, A = params.city.num_regions, env.num_actions(params)
    table = jnp.asarray(np.random.default_rng(0).integers(0, A, size=(steps, R)), jnp.int32)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def rollout(key, states):
        def one(carry, t):
            states, key = carry
            key, sub = jax.random.split(key)
            actions = table[(t + jnp.arange(batch)) % steps]
            obs, states, reward, _, _ = step(jax.random.split(sub, batch), states, actions, params)
            return (states, key), reward.sum() + obs.sum()
        (states, _), rewards = jax.lax.scan(one, (states, key), jnp.arange(steps))
        return states, rewards.sum()

    return jax.jit(rollout)


def time_jax(env, params, batch: int, steps: int, reps: int):
    """(compile seconds, run wall seconds, run CPU seconds) for `batch` cities x `steps` steps.

    CPU seconds (all threads of this process) tell the cost apart from the
    machine's load when other jobs share the cores."""
    _, states = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(0), batch), params)
    rollout = make_rollout(env, params, batch, steps)
    key = jax.random.key(1)
    start = time.perf_counter()
    compiled = rollout.lower(key, states).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(key, states))  # warm-up
    runs, cpu = [], []
    for rep in range(reps):
        start, start_cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(compiled(jax.random.key(2 + rep), states))
        runs.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return compile_s, runs, cpu


def time_reference(env, params, steps: int, reps: int):
    """Seconds per run of `steps` NumPy reference steps on one city."""
    ref = ReferenceRebalance.from_params(env.config, params)
    city = params.city
    rate = np.asarray(city.demand_rate, np.float64) * float(params.demand_scale)
    R, A, M = city.num_regions, env.num_actions(params), params.max_trips
    rng = np.random.default_rng(0)
    runs, cpu = [], []
    for _ in range(reps):
        state = ref.initial_state()
        start, start_cpu = time.perf_counter(), time.process_time()
        for t in range(steps):
            demand = rng.poisson(rate[t % city.steps_per_day])
            dest_bits = rng.integers(0, 2**32, size=M, dtype=np.uint32)
            state, _, _ = ref.step(state, rng.integers(0, A, size=R), demand, dest_bits)
        runs.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return runs, cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="manhattan-citibike")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--steps", type=int, default=144)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--ref-reps", type=int, default=3)
    args = parser.parse_args(argv)

    city, used = load_city(args.scenario)
    env = RebalanceEnv(RebalanceConfig(mode="poisson"))
    params = env.make_params(city)
    R, M = city.num_regions, params.max_trips
    print(f"scenario: {used} ({R} regions, {int(np.sum(city.region_mask))} real, "
          f"{city.trips_per_day:,.0f} trips/day, fleet {city.fleet_size:,})")
    print(f"backend: {jax.default_backend()} x{jax.device_count()}  jax {jax.__version__}")
    print(f"P = {params.pipeline_steps} pipeline steps, M = {M} trip slots, "
          f"random draws per city-step = {env.draws_per_step(params)} (R {R} demand + M {M} destinations)")

    ref_runs, ref_cpu = time_reference(env, params, args.steps, args.ref_reps)
    ref_rate = args.steps / statistics.median(ref_runs)
    rows = [("numpy reference", 1, float("nan"), ref_runs, ref_cpu)]
    for batch in args.batch:
        rows.append(("jax poisson", batch, *time_jax(env, params, batch, args.steps, args.reps)))

    print(f"\n{'impl':<16} {'B':>6} {'compile s':>10} {'run s (median)':>15} {'city-steps/s':>14} "
          f"{'x numpy':>9} {'CPU us/city-step':>17}")
    for name, batch, compile_s, runs, cpu in rows:
        comp = "-" if np.isnan(compile_s) else f"{compile_s:.2f}"
        run_s = statistics.median(runs)
        rate = batch * args.steps / run_s
        cpu_us = statistics.median(cpu) / (batch * args.steps) * 1e6
        print(f"{name:<16} {batch:>6} {comp:>10} {run_s:>15.4f} {rate:>14,.0f} {rate / ref_rate:>9.1f} {cpu_us:>17.2f}")
    print(f"\n{args.steps} steps per run, median of {args.reps} runs (reference: {args.ref_reps}); "
          f"bar: >= 50,000 city-steps/s at B=1024 and >= 10x the NumPy reference")


if __name__ == "__main__":
    main()
