"""Request-level routing speed: env steps under IA-RA (batched) and planner decisions.

    python benchmarks/bench_routing.py [--batch 1 64 256] [--fleets 28 36] [--reps 5]

1. City-steps/s: `steps` steps of `batch` independent cities (vmap) on the
   bundled San Francisco graph, IA-RA deciding every step (an in-graph
   Hungarian assignment) and Poisson arrivals, in one compiled `lax.scan`;
   beside the NumPy reference step with scipy's assignment, one city.
2. Milliseconds per decision of the full-map one-at-a-time rollout and the
   two-phase rollout (same horizon, samples and base policy) on the same
   states (the fleet after 60 IA-RA steps of each test seed), and their ratio.

Everything compiles first, then runs `reps` times; the tables give medians.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxmob.envs.routing import env as E
from jaxmob.envs.routing.demand import hotspot_demand
from jaxmob.envs.routing.evaluate import RoutingSetup, make_chunk, start_state
from jaxmob.envs.routing.graph import bundled_graph
from jaxmob.envs.routing.policies import ARRIVAL_SLOTS, ia_ra, rollout_targets
from jaxmob.envs.routing.reference import reference_step
from jaxmob.envs.routing.two_phase import sectors_for, two_phase_targets


def median_time(fn, reps: int) -> float:
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def env_rate(graph, demand, params, batch: int, steps: int, fleet: int, reps: int) -> float:
    setup = RoutingSetup(fleet=fleet)
    states = jax.tree.map(lambda *x: jnp.stack(x), *[start_state(graph, demand, setup, s) for s in range(batch)])

    @jax.jit
    def run(key):
        def one(s, k):
            t, a = jax.vmap(ia_ra, in_axes=(0, None))(s, params)
            arrivals = jax.vmap(E.sample_arrivals, in_axes=(0, None, None))(jax.random.split(k, batch), params, ARRIVAL_SLOTS)
            s, cost = jax.vmap(E.step, in_axes=(0, 0, 0, 0, None))(s, t, a, arrivals, params)
            return s, cost.sum()

        return jax.lax.scan(one, states, jax.random.split(key, steps))[1].sum()

    return batch * steps / median_time(lambda: run(jax.random.key(0)), reps)


def reference_rate(graph, demand, fleet: int, steps: int) -> float:
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(0)
    s = {k: np.asarray(v) for k, v in vars(start_state(graph, demand, RoutingSetup(fleet=fleet), 0)).items()}
    t0 = time.perf_counter()
    for _ in range(steps):
        free = np.flatnonzero(s["present"] & ~s["carrying"])
        live = np.flatnonzero(s["req_live"])
        targets, assigned = s["node"].copy(), np.full(fleet, -1)
        if len(free) and len(live):
            r, c = linear_sum_assignment(graph.hops[s["node"][free]][:, s["req_pick"][live]])
            assigned[free[r]] = live[c]
            targets[free[r]] = s["req_pick"][live[c]]
        count = rng.poisson(demand.rate)
        arrivals = {"count": count, "pick": rng.choice(graph.num_nodes, ARRIVAL_SLOTS, p=demand.pickup),
                    "drop": rng.choice(graph.num_nodes, ARRIVAL_SLOTS, p=demand.dropoff)}
        s, _ = reference_step(s, targets, assigned, arrivals, graph.next_hop)
    return steps / (time.perf_counter() - t0)


def decision_ms(graph, demand, params, fleet: int, setup: RoutingSetup, reps: int, seeds=(2000, 2001, 2002)) -> dict:
    warm = make_chunk(lambda k, s: ia_ra(s, params), params, 60)
    states = [warm(start_state(graph, demand, RoutingSetup(fleet=fleet, queue=setup.queue), s), jnp.int32(s), None)[0] for s in seeds]
    sectors = sectors_for(graph, demand.pickup, fleet, setup.cap)
    full = jax.jit(lambda k, s: rollout_targets(k, s, params, setup.horizon, setup.samples))
    two = jax.jit(lambda k, s: two_phase_targets(k, s, params, sectors, setup.cap, setup.sector_queue,
                                                 setup.horizon, setup.samples))
    out = {}
    for name, fn in (("full-map rollout", full), ("two-phase rollout", two)):
        out[name] = 1e3 * statistics.median(median_time(lambda: fn(jax.random.key(1), s), reps) for s in states)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--fleets", type=int, nargs="+", default=[28, 36])
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--cap", type=int, default=6)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ref-steps", type=int, default=200)
    args = ap.parse_args(argv)
    graph = bundled_graph()
    demand = hotspot_demand(graph)
    params = E.params_from(graph, demand)
    print(f"# routing on {graph.name} ({graph.num_nodes} intersections), {platform.machine()}, "
          f"{jax.devices()[0].platform} x {jax.device_count()}, jax {jax.__version__}")
    print(f"\n## env + IA-RA, fleet 28, queue 64: city-steps/s ({args.steps} steps, median of {args.reps})")
    print("| batch | city-steps/s |\n|---|---|")
    for b in args.batch:
        print(f"| {b} | {env_rate(graph, demand, params, b, args.steps, 28, args.reps):,.0f} |", flush=True)
    ref = reference_rate(graph, demand, 28, args.ref_steps)
    print(f"| NumPy reference + scipy assignment, 1 city | {ref:,.0f} |")
    setup = RoutingSetup(horizon=args.horizon, samples=args.samples, cap=args.cap)
    print(f"\n## ms per decision, horizon {args.horizon}, {args.samples} samples, cap {args.cap} (median over 3 states)")
    print("| fleet | sectors | full-map rollout | two-phase rollout | speed-up |\n|---|---|---|---|---|")
    for m in args.fleets:
        ms = decision_ms(graph, demand, params, m, setup, args.reps)
        full, two = ms["full-map rollout"], ms["two-phase rollout"]
        print(f"| {m} | {-(-m // args.cap)} | {full:.1f} | {two:.1f} | {full / two:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
