"""Request-level routing speed: env steps under IA-RA (batched) and planner decisions.

    python benchmarks/bench_routing.py [--batch 1 64 256] [--fleets 14 28 56] [--scaling-fleets 24 48 96 192] [--reps 5]

On the bundled San Francisco graph with the real scenario's forecast (the
19:00 peak at scale 1/4; `--modelled`: the hotspot model):

1. City-steps/s: `steps` steps of `batch` independent cities (vmap), IA-RA
   deciding every step (an in-graph Hungarian assignment) and Poisson
   arrivals, in one compiled `lax.scan`; beside the NumPy reference step with
   scipy's assignment, one city.
2. Milliseconds per decision of the full-map one-at-a-time rollout, the
   controlled one (phase one first) and the two-phase rollout (same horizon,
   samples and base policy) on the same states (the fleet after 60 IA-RA
   steps of each of 3 seeds), and the ratios.
3. How two-phase's decision time grows: with the fleet at a fixed cap (the
   sectors grow with it, ceil(m / cap), and run as one vmapped program), and
   with the number of sectors at a fixed fleet (the cap shrinks). The arrival
   rate grows with the fleet so that the load per taxi stays that of m = 28.

Everything compiles first, then runs `reps` times; the tables give medians.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np

from jaxmob.envs.routing import env as E
from jaxmob.envs.routing.demand import hotspot_demand
from jaxmob.envs.routing.task import real_scenario
from jaxmob.envs.routing.evaluate import RoutingSetup, make_chunk, start_state
from jaxmob.envs.routing.graph import bundled_graph
from jaxmob.envs.routing.policies import ARRIVAL_SLOTS, ia_ra, rollout_targets
from jaxmob.envs.routing.reference import reference_step
from jaxmob.envs.routing.two_phase import phase_one_rollout_targets, sectors_for, two_phase_targets


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


def warm_states(graph, demand, params, fleet: int, queue: int, seeds=(2000, 2001, 2002)) -> list:
    """The fleet after 60 IA-RA steps of each seed."""
    warm = make_chunk(lambda k, s: ia_ra(s, params), params, 60)
    return [warm(start_state(graph, demand, RoutingSetup(fleet=fleet, queue=queue), s), jnp.int32(s), None)[0] for s in seeds]


def decision_ms(graph, demand, params, fleet: int, setup: RoutingSetup, reps: int, planners=("full", "controlled", "two")) -> dict:
    """Median ms per decision of each planner over the warm states."""
    states = warm_states(graph, demand, params, fleet, setup.queue)
    sectors = sectors_for(graph, demand.pickup, fleet, setup.cap)
    fns = {"full": lambda k, s: rollout_targets(k, s, params, setup.horizon, setup.samples),
           "controlled": lambda k, s: phase_one_rollout_targets(k, s, params, sectors, setup.cap, setup.horizon,
                                                                setup.samples),
           "two": lambda k, s: two_phase_targets(k, s, params, sectors, setup.cap, setup.sector_queue, setup.horizon,
                                                 setup.samples)}
    out = {}
    for name in planners:
        fn = jax.jit(fns[name])
        out[name] = 1e3 * statistics.median(median_time(lambda: fn(jax.random.key(1), s), reps) for s in states)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--fleets", type=int, nargs="+", default=[14, 28, 56])
    ap.add_argument("--scaling-fleets", type=int, nargs="+", default=[24, 48, 96, 192], help="two-phase alone")
    ap.add_argument("--sector-fleet", type=int, default=48, help="the fleet of the sectors table")
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--cap", type=int, default=6)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ref-steps", type=int, default=200)
    ap.add_argument("--modelled", action="store_true", help="the hotspot demand model instead of the real forecast")
    args = ap.parse_args(argv)
    if args.modelled:
        graph = bundled_graph()
        demand = hotspot_demand(graph)
    else:
        graph, demand, _ = real_scenario()
    params = E.params_from(graph, demand)
    print(f"# routing on {graph.name} ({graph.num_nodes} intersections), {'modelled' if args.modelled else 'real'} "
          f"demand {demand.rate:.3g} requests/step, {platform.machine()}, {jax.devices()[0].platform} x "
          f"{jax.device_count()}, jax {jax.__version__}")
    print(f"\n## env + IA-RA, fleet 28, queue 64: city-steps/s ({args.steps} steps, median of {args.reps})")
    print("| batch | city-steps/s |\n|---|---|")
    for b in args.batch:
        print(f"| {b} | {env_rate(graph, demand, params, b, args.steps, 28, args.reps):,.0f} |", flush=True)
    ref = reference_rate(graph, demand, 28, args.ref_steps)
    print(f"| NumPy reference + scipy assignment, 1 city | {ref:,.0f} |")
    setup = RoutingSetup(horizon=args.horizon, samples=args.samples, cap=args.cap)
    print(f"\n## ms per decision, horizon {args.horizon}, {args.samples} samples, cap {args.cap} (median over 3 states)")
    print("| fleet | sectors | full-map rollout | phase one + full-map rollout | two-phase rollout | speed-up vs controlled |"
          "\n|---|---|---|---|---|---|")
    for m in args.fleets:
        ms = decision_ms(graph, demand, params, m, setup, args.reps)
        print(f"| {m} | {-(-m // args.cap)} | {ms['full']:,.1f} | {ms['controlled']:,.1f} | {ms['two']:.1f} | "
              f"{ms['controlled'] / ms['two']:.1f}x |", flush=True)

    def loaded(m):  # the forecast's rate scaled with the fleet (the load per taxi of m = 28)
        return params.replace(rate=params.rate * m / 28)

    print(f"\n## two-phase, ms per decision as the fleet grows (cap {args.cap}, rate x m / 28)")
    print("| fleet | sectors | two-phase rollout | per taxi |\n|---|---|---|---|")
    for m in args.scaling_fleets:
        scaled = type(demand)(rate=demand.rate * m / 28, pickup=demand.pickup, dropoff=demand.dropoff)
        two = decision_ms(graph, scaled, loaded(m), m, replace(setup, queue=max(64, 2 * m)), args.reps, ("two",))["two"]
        print(f"| {m} | {-(-m // args.cap)} | {two:,.1f} | {two / m:.2f} |", flush=True)
    m = args.sector_fleet
    print(f"\n## two-phase, ms per decision as the sectors grow (fleet {m}, rate x {m} / 28, cap = ceil(m / sectors))")
    print("| sectors | cap | two-phase rollout |\n|---|---|---|")
    scaled = type(demand)(rate=demand.rate * m / 28, pickup=demand.pickup, dropoff=demand.dropoff)
    for sectors in (1, 2, 4, 8, 16):
        cap = -(-m // sectors)
        two = decision_ms(graph, scaled, loaded(m), m, replace(setup, cap=cap, queue=max(64, 2 * m)), args.reps, ("two",))["two"]
        print(f"| {sectors} | {cap} | {two:,.1f} |", flush=True)


if __name__ == "__main__":
    main()
