"""Fleet sweep across the two stability thresholds: outstanding requests over time.

The theory (`jaxmob/envs/routing/theory.py`) gives a necessary fleet
(m > E[eta] D_min) and a sufficient one (m >= E[eta] D_max) for
instantaneous assignment to keep the queue bounded. This script runs IA-RA
and the two-phase rollout on fleets below, between and above them and plots
the outstanding requests per step, mean and std over the test episodes. It
also fits the growth of the queue over the second half of each episode
(requests per step): near 0 when the queue is bounded, near
E[eta] (1 - m / (E[eta] D)) when it is not. Finished cells are kept in the
JSON, so an interrupted run resumes. On the real requests (`--scenario
sf_cabspotting`: the 5 test days replayed from 18:00 for 2 hours, the
thresholds from the training days' forecast of that window) it writes
results/routing_real_fleet_sweep.*, on the modelled demand (`sf_north`,
seeded episodes) results/routing_fleet_sweep.*.

    python experiments/routing_fleet_sweep.py --scenario sf_cabspotting   # about 15 min on one CPU core
    python experiments/routing_fleet_sweep.py           # the modelled demand, about 10 min on 2 CPU cores
    python experiments/routing_fleet_sweep.py --quick   # a smoke run
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from jaxmob.envs.routing.evaluate import (
    LABELS,
    add_setup_arguments,
    finished_cells,
    run_policy,
    setup_dict,
    setup_from_args,
)
from jaxmob.envs.routing.task import REAL, add_scenario_arguments, scenario_episodes
from jaxmob.envs.routing.theory import fleet_thresholds


def growth(curves) -> float:
    """Least-squares slope of the mean queue over the second half of the episode (requests per step)."""
    m = np.mean(np.array(curves, float), axis=0)
    x = np.arange(len(m))[len(m) // 2:]
    return float(np.polyfit(x, m[len(m) // 2:], 1)[0])


def default_fleets(th: dict) -> list:
    n, s = th["necessary_fleet"], th["sufficient_fleet"]
    return sorted({max(2, n // 2), max(2, n - 4), n, (n + s) // 2, s, s + 8})


def table(results) -> str:
    """Markdown: per policy and fleet (its place against the thresholds), the total wait, the queue
    at the last step and its growth over the second half, and the passengers delivered, mean ± std
    over the episodes."""
    th = results["thresholds"]
    lines = ["| fleet | policy | total wait | queue at the end | growth / step | delivered | turned away |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(results["rows"], key=lambda r: (r["fleet"], r["policy"])):
        m = r["fleet"]
        zone = ("< necessary" if m < th["necessary_fleet"] else "necessary" if m == th["necessary_fleet"] else
                "sufficient" if m == th["sufficient_fleet"] else "> sufficient" if m > th["sufficient_fleet"] else "between")
        eps = r["episodes"]
        end = np.array([e["outstanding_end"] for e in eps], float)
        lines.append(f"| {m} ({zone}) | {r['label']} | {r['total_wait_mean']:,.0f} ± {r['total_wait_std']:,.0f} | "
                     f"{end.mean():.1f} ± {end.std():.1f} | {r['growth']:+.3f} | "
                     f"{np.mean([e['delivered'] for e in eps]):.1f} | {np.mean([e['turned_away'] for e in eps]):.1f} |")
    return "\n".join(lines)


def plot(payload: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    th = payload["thresholds"]
    policies = list(dict.fromkeys(r["policy"] for r in payload["rows"]))
    fig, axes = plt.subplots(1, len(policies), figsize=(6 * len(policies), 4.2), sharey=True, squeeze=False)
    cmap = plt.get_cmap("viridis")
    fleets = sorted({r["fleet"] for r in payload["rows"]})
    for ax, policy in zip(axes[0], policies):
        for k, fleet in enumerate(fleets):
            r = next((r for r in payload["rows"] if r["policy"] == policy and r["fleet"] == fleet), None)
            if r is None:
                continue
            c = np.array(r["curves"], float)
            m, s = c.mean(0), c.std(0)
            x = np.arange(1, len(m) + 1)
            zone = "< necessary" if fleet < th["necessary_fleet"] else ">= sufficient" if fleet >= th["sufficient_fleet"] else "between"
            colour = cmap(k / max(1, len(fleets) - 1))
            ax.plot(x, m, color=colour, label=f"m = {fleet} ({zone}), growth {r['growth']:+.3f}/step")
            ax.fill_between(x, m - s, m + s, color=colour, alpha=0.15)
        ax.set_title(LABELS[policy], fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("outstanding requests (mean ± std over episodes)")
    fig.suptitle(f"{payload['scenario']}: E[eta] = {th['rate']:g}/step, D_min = {th['D_min']:.1f}, D_max = {th['D_max']:.1f} "
                 f"edges: necessary m >= {th['necessary_fleet']}, sufficient m >= {th['sufficient_fleet']}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fleets", help="comma-separated (default: around the thresholds)")
    ap.add_argument("--policies", default="ia_ra,two_phase")
    ap.add_argument("--seeds", type=int, default=5, help="episodes of the modelled demand")
    add_setup_arguments(ap, skip=("fleet", "steps"), queue=128)
    ap.add_argument("--steps", type=int, help="decisions per episode (default 480, two hours, on sf_cabspotting; 300 on "
                    "a modelled demand)")
    add_scenario_arguments(ap, default="sf_north", start_hour=18)
    ap.add_argument("--quick", action="store_true", help="two fleets, 20 steps, 1 seed, horizon 3")
    ap.add_argument("--out", help="default results/routing_fleet_sweep (modelled) or results/routing_real_fleet_sweep (real)")
    args = ap.parse_args(argv)
    real = args.scenario == REAL
    args.steps = args.steps or (480 if real else 300)
    if real and args.start_hour is None:
        args.start_hour = 18.0
    if args.quick:
        args.fleets, args.seeds, args.steps, args.horizon, args.samples, args.cap, args.queue, args.chunk = "4,8", 1, 20, 3, 2, 4, 16, 5
    base = setup_from_args(args)
    graph, demand, episodes = scenario_episodes(args.scenario, base.steps, args.seeds, start_hour=args.start_hour,
                                                scale=args.scale)
    th = fleet_thresholds(graph.hops, demand.pickup, demand.dropoff, demand.rate).as_dict()
    fleets = [int(f) for f in args.fleets.split(",")] if args.fleets else default_fleets(th)
    out = Path(args.out or ("results/routing_real_fleet_sweep" if real else "results/routing_fleet_sweep"))
    done = finished_cells(out.with_suffix(".json"), base, episodes)
    payload = {"scenario": args.scenario, "demand": demand.source, "setup": setup_dict(base),
               "episodes": [e.name for e in episodes], "thresholds": th, "rows": []}
    for policy in args.policies.split(","):
        for fleet in fleets:
            if (policy, fleet) not in done:
                t0 = time.time()
                r = run_policy(policy, graph, demand, replace(base, fleet=fleet), episodes=episodes)
                r["growth"] = growth(r["curves"])
                done[(policy, fleet)] = r
                print(f"{LABELS[policy]}, m = {fleet}: final queue {np.mean([e['outstanding_end'] for e in r['episodes']]):.1f}, "
                      f"growth {r['growth']:+.3f}/step ({time.time() - t0:.0f} s)", flush=True)
            payload["rows"] = list(done.values())
            out.parent.mkdir(parents=True, exist_ok=True)
            out.with_suffix(".json").write_text(json.dumps(payload, indent=1))
    plot(payload, out.with_suffix(".png"))
    print(table(payload))
    print(f"thresholds: {json.dumps({k: round(v, 2) for k, v in th.items()})}")
    print(f"wrote {out}.json and {out}.png")


if __name__ == "__main__":
    main()
