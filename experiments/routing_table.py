"""Total wait and decision time of IA, IA-RA, the full-map rollout in both forms and two-phase rollout.

On the bundled San Francisco graph, at several fleet sizes, every policy
faces the same test episodes: the real requests of the 5 held-out test days
replayed in the evening peak (`--scenario sf_cabspotting`: 19:00-20:00 at
scale 1/4, results/routing_real_table.*), or seeded episodes of the
documented hotspot model (`--scenario sf_north`, seeds 2000, ...:
results/routing_table.*). All rollouts use the same horizon, samples and
base policy (IA-RA); two-phase cuts the map into ceil(m / cap) sectors. The
controlled full-map rollout gets the same phase one between the same
sectors, then one rollout over all taxis. Per fleet the script prints the
paper's bars, two-phase's total wait within 5% of the controlled full-map
rollout's and at least 5x less time per decision, and what phase one buys
(the full-map rollout with it against without it), all measured in this run
on this machine. Finished cells are kept in the JSON, so an interrupted run resumes.

    python experiments/routing_table.py --scenario sf_cabspotting --fleets 14,20,28   # about 60 min on one CPU core
    python experiments/routing_table.py --scenario sf_north        # the modelled demand, about 40 min
    python experiments/routing_table.py --quick    # a smoke run
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np

from jaxmob.envs.routing.evaluate import (
    LABELS,
    POLICIES,
    TEST_SEEDS,
    add_setup_arguments,
    finished_cells,
    format_rows,
    run_policy,
    setup_dict,
    setup_from_args,
)
from jaxmob.envs.routing.task import REAL, add_scenario_arguments, scenario_episodes
from jaxmob.envs.routing.theory import fleet_thresholds

WAIT_BAR = 0.05  # two-phase's total wait at most 5% above the full-map rollout's
SPEED_BAR = 5.0  # and at least 5x faster per decision


def bars(rows: list) -> list:
    """Per fleet: two-phase against the controlled full-map rollout (the paper's comparison) and
    against the plain one, and what phase one buys the full-map rollout."""
    out = []
    for fleet in sorted({r["fleet"] for r in rows}):
        cell = {r["policy"]: r for r in rows if r["fleet"] == fleet}
        if "two_phase" not in cell:
            continue
        two, bar = cell["two_phase"], {"fleet": fleet}
        full = cell.get("rollout_phase_one")
        if full:
            bar["wait_gap"] = two["total_wait_mean"] / full["total_wait_mean"] - 1.0
            bar["speedup"] = full["decision_ms"] / two["decision_ms"]
            bar["wait_bar_met"], bar["speed_bar_met"] = bool(bar["wait_gap"] <= WAIT_BAR), bool(bar["speedup"] >= SPEED_BAR)
        if "rollout" in cell:
            bar["wait_gap_plain"] = two["total_wait_mean"] / cell["rollout"]["total_wait_mean"] - 1.0
            if full:
                bar["phase_one_buys"] = 1.0 - full["total_wait_mean"] / cell["rollout"]["total_wait_mean"]
        out.append(bar)
    return out


def bar_text(b: dict) -> list:
    """The bars of one fleet in words."""
    out = []
    if "wait_gap" in b:
        out.append(f"two-phase wait {b['wait_gap']:+.1%} vs the controlled full-map rollout "
                   f"({'met' if b['wait_bar_met'] else 'MISSED'}), {b['speedup']:.1f}x faster "
                   f"({'met' if b['speed_bar_met'] else 'MISSED'})")
    if "wait_gap_plain" in b:
        out.append(f"{b['wait_gap_plain']:+.1%} vs the plain full-map rollout")
    if "phase_one_buys" in b:
        out.append(f"phase one cuts the full-map rollout's wait by {b['phase_one_buys']:.1%}")
    return out


def table(results) -> str:
    """Markdown: total wait (mean ± std over episodes), wait per request and time per decision,
    per fleet and policy; the least total wait of each fleet in bold."""
    lines = ["| fleet | policy | total wait | wait / request | ms / decision |", "|---|---|---|---|---|"]
    rows = sorted(results["rows"], key=lambda r: (r["fleet"], POLICIES.index(r["policy"])))
    for r in rows:
        best = r["total_wait_mean"] == min(o["total_wait_mean"] for o in rows if o["fleet"] == r["fleet"])
        cells = [r["label"], f"{r['total_wait_mean']:.1f} ± {r['total_wait_std']:.1f}", f"{r['mean_wait']:.2f}"]
        cells = [f"**{c}**" for c in cells] if best else cells
        ms = r["decision_ms"]
        lines.append(f"| {r['fleet']} | {' | '.join(cells)} | {ms:.2f} |" if ms < 10 else f"| {r['fleet']} | {' | '.join(cells)} | {ms:.1f} |")
    return "\n".join(lines)


def plot(rows: list, path: Path, title: str) -> None:
    """Top: total wait and ms per decision per fleet and policy; below, one panel per fleet: the
    outstanding requests at each step, mean ± std over the episodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fleets = sorted({r["fleet"] for r in rows})
    policies = [p for p in POLICIES if any(r["policy"] == p for r in rows)]
    fig = plt.figure(figsize=(4 * max(3, len(fleets)), 8.5))
    grid = fig.add_gridspec(2, 2 * len(fleets))
    a = fig.add_subplot(grid[0, :len(fleets)])
    b = fig.add_subplot(grid[0, len(fleets):])
    width = 0.8 / len(policies)
    for k, p in enumerate(policies):
        cells = [next((r for r in rows if r["policy"] == p and r["fleet"] == f), None) for f in fleets]
        x = np.arange(len(fleets)) + (k - (len(policies) - 1) / 2) * width
        a.bar(x, [c["total_wait_mean"] if c else np.nan for c in cells], width,
              yerr=[c["total_wait_std"] if c else 0 for c in cells], label=LABELS[p], capsize=2, color=f"C{k}")
        b.bar(x, [c["decision_ms"] if c else np.nan for c in cells], width, label=LABELS[p], color=f"C{k}")
    for ax, label in ((a, "total wait (request-steps), mean ± std over episodes"), (b, "ms per decision (median)")):
        ax.set_xticks(np.arange(len(fleets)), [f"m = {f}" for f in fleets])
        ax.set_ylabel(label, fontsize=8)
    if any(r["decision_ms"] > 0 for r in rows):
        b.set_yscale("log")
    a.legend(fontsize=7)
    for j, fleet in enumerate(fleets):
        ax = fig.add_subplot(grid[1, 2 * j:2 * j + 2])
        for k, p in enumerate(policies):
            r = next((r for r in rows if r["policy"] == p and r["fleet"] == fleet), None)
            if r is None:
                continue
            c = np.array(r["curves"], float)
            m, sd, x = c.mean(0), c.std(0), np.arange(1, c.shape[1] + 1)
            ax.plot(x, m, color=f"C{k}", lw=1, label=LABELS[p])
            ax.fill_between(x, m - sd, m + sd, color=f"C{k}", alpha=0.12)
        ax.set_title(f"m = {fleet}: outstanding requests", fontsize=8)
        ax.set_xlabel("step", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fleets", default="20,28,36")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--seeds", type=int, default=5, help="episodes of the modelled demand")
    ap.add_argument("--first-seed", type=int, default=TEST_SEEDS[0], help="episodes use seeds first-seed, first-seed + 1, ...")
    add_setup_arguments(ap, skip=("fleet", "steps"))
    ap.add_argument("--steps", type=int, help="decisions per episode (default 240, one hour, on sf_cabspotting; 120 on a "
                    "modelled demand)")
    add_scenario_arguments(ap, default="sf_north", start_hour=19)
    ap.add_argument("--quick", action="store_true", help="fleet 6, 10 steps, 1 seed, horizon 3")
    ap.add_argument("--out", help="default results/routing_table (modelled) or results/routing_real_table (real)")
    args = ap.parse_args(argv)
    args.steps = args.steps or (240 if args.scenario == REAL else 120)
    if args.quick:
        args.fleets, args.seeds, args.steps, args.horizon, args.samples, args.cap, args.chunk = "6", 1, 10, 3, 2, 3, 5
    base = setup_from_args(args)
    graph, demand, episodes = scenario_episodes(args.scenario, base.steps, args.seeds, start_hour=args.start_hour,
                                                scale=args.scale, first_seed=args.first_seed)
    out = Path(args.out or ("results/routing_real_table" if args.scenario == REAL else "results/routing_table"))
    done = finished_cells(out.with_suffix(".json"), base, episodes)
    thresholds = fleet_thresholds(graph.hops, demand.pickup, demand.dropoff, demand.rate).as_dict()
    payload = {"scenario": args.scenario, "graph": str(graph), "demand": demand.source, "setup": setup_dict(base),
               "episodes": [e.name for e in episodes], "thresholds": thresholds, "machine": f"{platform.machine()}, "
               f"{jax.device_count()} x {jax.devices()[0].platform}", "jax": jax.__version__, "rows": []}
    for fleet in (int(f) for f in args.fleets.split(",")):
        for policy in args.policies.split(","):
            if (policy, fleet) not in done:
                t0 = time.time()
                done[(policy, fleet)] = run_policy(policy, graph, demand, replace(base, fleet=fleet), episodes=episodes)
                print(f"{LABELS[policy]}, m = {fleet}: {time.time() - t0:.0f} s", flush=True)
            payload["rows"] = list(done.values())
            payload["bars"] = bars(payload["rows"])
            out.parent.mkdir(parents=True, exist_ok=True)
            out.with_suffix(".json").write_text(json.dumps(payload, indent=1))
    print(format_rows(payload["rows"]))
    for b in payload["bars"]:
        print(f"m = {b['fleet']}: " + "; ".join(bar_text(b)))
    what = (f"{args.scenario}: the {len(episodes)} test days replayed" if args.scenario == REAL
            else f"{graph.name}, modelled demand: {len(episodes)} seeded episodes")
    plot(payload["rows"], out.with_suffix(".png"), f"{what}, {demand.rate:.3g} requests/step, H = {args.horizon}, "
         f"{args.samples} samples, cap {args.cap}, {args.steps} steps")
    print(f"wrote {out}.json and {out}.png")


if __name__ == "__main__":
    main()
