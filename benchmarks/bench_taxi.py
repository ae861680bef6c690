"""Taxi environment speed: taxi-steps/s with 10,000 taxis, alone and batched,
against the NumPy reference, measured in the same run.

    python benchmarks/bench_taxi.py [--taxis 10000] [--batch 1 4 16] [--steps 36] [--reps 5]

Every JAX configuration compiles first, then runs `reps` times; the table gives
medians. Actions are uniform over the 7 moves (the step's cost does not depend
on the policy's quality). The reference runs `--ref-steps` steps of the same
city with the same draws' statistics (it is too slow for more).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxmob.envs.taxi.city import synthetic_hex_city
from jaxmob.envs.taxi.env import TaxiConfig, TaxiEnv, make_params
from jaxmob.envs.taxi.reference import ReferenceTaxi


def make_rollout(env, params, batch: int, steps: int):
    def rollout(key, states):
        def one(carry, k):
            states = carry
            k_a, k_s = jax.random.split(k)
            actions = jax.random.randint(k_a, (batch, params.num_taxis), 0, 7)
            obs, states, reward, _, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_s, batch), states, actions, params)
            return states, reward.sum() + obs[:, 0, 0].sum()
        return jax.lax.scan(one, states, jax.random.split(key, steps))
    return jax.jit(rollout)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--taxis", type=int, default=10_000)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--steps", type=int, default=36)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ref-steps", type=int, default=3)
    args = ap.parse_args(argv)
    city = synthetic_hex_city()
    env = TaxiEnv(TaxiConfig())
    params = make_params(city, num_taxis=args.taxis)
    # start at 8:00, with trips under way, so matching and driving are at their busiest
    warm = jax.jit(lambda k: jax.lax.fori_loop(0, 48, lambda i, s: env.step(jax.random.fold_in(k, i), s,
                   jnp.zeros((args.taxis,), jnp.int32), params)[1], env.initial_state(params)))
    start = warm(jax.random.key(0))

    rows = []
    for batch in args.batch:
        states = jax.tree.map(lambda x: jnp.broadcast_to(x, (batch,) + x.shape), start)
        run = make_rollout(env, params, batch, args.steps)
        t0 = time.perf_counter()
        jax.block_until_ready(run(jax.random.key(1), states))
        compile_s = time.perf_counter() - t0
        times = []
        for r in range(args.reps):
            t0 = time.perf_counter()
            jax.block_until_ready(run(jax.random.key(2 + r), states))
            times.append(time.perf_counter() - t0)
        rows.append((batch, compile_s, statistics.median(times)))

    ref = ReferenceTaxi(params, max_wait=env.config.max_wait, reward=env.config.reward)
    rstate = {k: np.asarray(v).astype(np.int64) if k != "t" else int(v) for k, v in
              dict(cell=start.cell, busy=start.busy, waiting=start.waiting, t=start.t).items()}
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(args.ref_steps):
        new = rng.poisson(np.asarray(env.expected_orders(rstate["t"], params)))
        rstate, _, _ = ref.step(rstate, rng.integers(0, 7, args.taxis), new, rng.uniform(size=args.taxis))
    ref_rate = args.ref_steps * args.taxis / (time.perf_counter() - t0)

    print(f"machine: {platform.processor() or platform.machine()}, {jax.device_count()} x {jax.devices()[0].platform}, "
          f"jax {jax.__version__}; {args.taxis:,} taxis, {city.num_cells} cells, {args.steps} steps per run, "
          f"median of {args.reps}")
    print(f"{'implementation':<16}{'cities':>7}{'compile s':>11}{'run s':>10}{'taxi-steps/s':>15}{'x numpy':>9}")
    print(f"{'numpy reference':<16}{1:>7}{'-':>11}{args.ref_steps * args.taxis / ref_rate:>10.3f}{ref_rate:>15,.0f}{1.0:>9.1f}")
    for batch, compile_s, run_s in rows:
        rate = batch * args.steps * args.taxis / run_s
        print(f"{'jax':<16}{batch:>7}{compile_s:>11.2f}{run_s:>10.3f}{rate:>15,.0f}{rate / ref_rate:>9.1f}")


if __name__ == "__main__":
    main()
