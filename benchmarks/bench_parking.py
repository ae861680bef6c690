"""Parking env speed: requests allocated per second, batched, beside the NumPy reference.

    python benchmarks/bench_parking.py [--batch 1 64 256] [--steps 120] [--reps 5]

`batch` independent copies of the bundled Melbourne scenario (vmap) step
`steps` minutes of the peak (from 10:00, the expected occupancy parked) under
the nearest-free-bay rule, in one compiled `lax.scan`; the rate is requests
made per second of wall time (about 19.5 a minute each) and city-minutes per
second. Beside it, the NumPy reference step (`reference.py`) on one city over
the same minutes. Everything compiles first, then runs `reps` times; the
table gives medians and the batched-over-reference ratio.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxmob.envs.parking.baselines import rule_policy
from jaxmob.envs.parking.env import ParkingConfig, ParkingEnv, make_params, offer_scores
from jaxmob.envs.parking.reference import reference_step
from jaxmob.envs.parking.scenario import load


def peak_states(env, params, batch: int):
    """`batch` states at 10:00 (minute 180 of the day) with the model's expected occupancy parked."""
    return jax.vmap(lambda k: env.initial_state(k, params, start=180))(jax.random.split(jax.random.key(0), batch))


def env_rate(env, params, batch: int, steps: int, reps: int) -> tuple[float, float]:
    states = peak_states(env, params, batch)

    @jax.jit
    def run(states, key):
        def one(s, k):
            keys = jax.random.split(k, batch)
            a = jax.vmap(rule_policy, in_axes=(0, 0, None, None))(keys, s, params, env)
            _, s, _, _, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, s, a, params)
            return s, info["requests"].sum()

        return jax.lax.scan(one, states, jax.random.split(key, steps))[1].sum()

    made = int(run(states, jax.random.key(1)))  # compile (and count the requests of one run)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(run(states, jax.random.key(1)))
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    return made / t, batch * steps / t


def reference_rate(env, params, steps: int) -> float:
    p = {k: np.asarray(v) for k, v in vars(params).items()}
    state = jax.tree.map(lambda x: x[0], peak_states(env, params, 1))
    scores = np.asarray(offer_scores(jax.random.key(0), state, rule_policy(jax.random.key(0), state, params, env), params))
    s = jax.device_get(state)
    s = dict(t=int(s.t), free=s.free, free_since=s.free_since, en_route=s.en_route, departs=s.departs,
             arrives=s.arrives, due_reward=s.due_reward, q_dest=s.queue.dest, q_time=s.queue.time,
             q_stay=s.queue.stay, q_valid=s.queue.valid)
    made, t0 = 0, time.perf_counter()
    for i in range(steps):
        arrivals = [np.asarray(a) for a in env.arrivals(jax.random.key(i), jnp.int32(s["t"]), params)]
        s, counts = reference_step(s, scores, np.arange(len(s["q_valid"])), arrivals, p, env.config.max_wait)
        made += int(counts["requests"].sum())
    return made / (time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ref-steps", type=int, default=20)
    ap.add_argument("--scenario", default="melbourne", help="bundled scenario (melbourne-weekday-peak: queues of hundreds)")
    args = ap.parse_args(argv)
    scenario = load(args.scenario)
    env = ParkingEnv(ParkingConfig(horizon=scenario.minutes, random_start=False))
    params = make_params(scenario)
    print(f"# parking on {scenario.name} ({scenario.num_facilities} facilities, {int(scenario.capacity.sum())} bays), "
          f"{platform.machine()}, {jax.devices()[0].platform} x {jax.device_count()}, jax {jax.__version__}")
    print(f"\n## env + nearest-free-bay rule, {args.steps} peak minutes (median of {args.reps})")
    print("| batch | requests/s | city-minutes/s |\n|---|---|---|")
    rates = {}
    for b in args.batch:
        rates[b], minutes = env_rate(env, params, b, args.steps, args.reps)
        print(f"| {b} | {rates[b]:,.0f} | {minutes:,.0f} |", flush=True)
    ref = reference_rate(env, params, args.ref_steps)
    print(f"| NumPy reference, 1 city | {ref:,.0f} | |")
    best = max(rates, key=rates.get)
    print(f"\nbest batch ({best}) / reference: {rates[best] / ref:,.0f}x; best batch / batch {min(rates)}: "
          f"{rates[best] / rates[min(rates)]:.1f}x")


if __name__ == "__main__":
    main()
