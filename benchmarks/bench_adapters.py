"""What the PettingZoo and Gymnasium adapters cost against the native path, in city-steps per second.

    python benchmarks/bench_adapters.py [--env rebalance-v1] [--steps 200] [--num-envs 16] [--reps 3]

On one scenario (random actions): the native path (`jaxmob.make`, a compiled `lax.scan` over a
`vmap` of `num_envs` cities), the Gymnasium `VectorEnv` (the same vmapped step, one Python call
and a JAX-to-NumPy crossing per step), the Gymnasium `Env` (one city) and the PettingZoo
`ParallelEnv` (one city, a dict entry per agent). Each is run once to compile, then `reps`
times; the table gives medians and the ratio to the native path, measured in the same run.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax

import jaxmob
from jaxmob.adapters import GymEnv, ParallelEnv, VectorEnv


def timed(run, reps: int) -> float:
    run()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def native(env_id, steps, num_envs, options):
    env, params = jaxmob.make(env_id, **options)
    spec = env.action_spec(params)

    @jax.jit
    def run(key):
        def one(key):
            def step(state, k):
                a, s = jax.random.split(k)
                return env.step(s, state, spec.sample(a), params)[1], None
            _, state = env.reset(key, params)
            return jax.lax.scan(step, state, jax.random.split(key, steps))[0]
        return jax.vmap(one)(jax.random.split(key, num_envs))

    return lambda: jax.block_until_ready(run(jax.random.key(0)))


def loop(env, steps, sample, reset_every):
    def run():
        env.reset(seed=0)
        for t in range(steps):
            out = env.step(sample())
            if t % reset_every == reset_every - 1 and not isinstance(env, VectorEnv):
                env.reset()
        return out
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="rebalance-v1")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--num-envs", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    options = {}
    n, steps = args.num_envs, args.steps
    gym, pz, vec = GymEnv(args.env, **options), ParallelEnv(args.env, **options), VectorEnv(args.env, n, **options)
    horizon = gym._city.horizon
    pz.reset(seed=0)
    pz_sample = lambda: {a: pz.action_space(a).sample() for a in pz.possible_agents}
    pz_run = lambda: [(pz.reset() if pz.agents == [] else None, pz.step(pz_sample())) for _ in range(steps)]
    rows = [("native: jaxmob.make, lax.scan over vmap", n, native(args.env, steps, n, options)),
            ("Gymnasium VectorEnv (vmapped step)", n, loop(vec, steps, vec.action_space.sample, horizon)),
            ("Gymnasium Env (one city)", 1, loop(gym, steps, gym.action_space.sample, horizon)),
            ("PettingZoo ParallelEnv (one city)", 1, pz_run)]
    print(f"# adapters on {args.env} ({len(gym._city.real)} agents), {steps} steps, {platform.machine()}, "
          f"{jax.devices()[0].platform} x {jax.device_count()}, jax {jax.__version__}, median of {args.reps}")
    print("| path | cities | city-steps/s | x native |\n|---|---|---|---|")
    rates = []
    for label, cities, run in rows:
        rates.append(cities * steps / timed(run, args.reps))
        print(f"| {label} | {cities} | {rates[-1]:,.0f} | {rates[-1] / rates[0]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
