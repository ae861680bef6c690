"""Total wait and decision time of IA, IA-RA, full-map rollout and two-phase rollout.

On the bundled San Francisco graph with the documented demand model, at
several fleet sizes, every policy faces the same test episodes (seeds 2000,
...). The full-map one-at-a-time rollout and the two-phase rollout use the
same horizon, samples and base policy (IA-RA); two-phase cuts the map into
ceil(m / cap) sectors. Per fleet the script prints the two bars: two-phase's
total wait within 5% of the full-map rollout's, and at least 5x less time
per decision, both measured in this run on this machine. Finished cells are
kept in the JSON, so an interrupted run resumes. Writes results/routing_table.json and .png.

    python experiments/routing_table.py            # about 25 min on 2 CPU cores
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

from jaxmob.envs.routing.evaluate import (LABELS, POLICIES, TEST_SEEDS, add_setup_arguments, finished_cells,
                                          format_rows, run_policy, setup_dict, setup_from_args)
from jaxmob.envs.routing.task import load_scenario
from jaxmob.envs.routing.theory import fleet_thresholds

WAIT_BAR = 0.05  # two-phase's total wait at most 5% above the full-map rollout's
SPEED_BAR = 5.0  # and at least 5x faster per decision


def bars(rows: list) -> list:
    """Per fleet: two-phase against the full-map rollout."""
    out = []
    for fleet in sorted({r["fleet"] for r in rows}):
        cell = {r["policy"]: r for r in rows if r["fleet"] == fleet}
        if "rollout" in cell and "two_phase" in cell:
            full, two = cell["rollout"], cell["two_phase"]
            gap = two["total_wait_mean"] / full["total_wait_mean"] - 1.0
            speedup = full["decision_ms"] / two["decision_ms"]
            out.append({"fleet": fleet, "wait_gap": gap, "speedup": speedup,
                        "wait_bar_met": bool(gap <= WAIT_BAR), "speed_bar_met": bool(speedup >= SPEED_BAR)})
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fleets = sorted({r["fleet"] for r in rows})
    policies = [p for p in POLICIES if any(r["policy"] == p for r in rows)]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(policies)
    for k, p in enumerate(policies):
        cells = [next((r for r in rows if r["policy"] == p and r["fleet"] == f), None) for f in fleets]
        x = np.arange(len(fleets)) + (k - (len(policies) - 1) / 2) * width
        a.bar(x, [c["total_wait_mean"] if c else np.nan for c in cells], width,
              yerr=[c["total_wait_std"] if c else 0 for c in cells], label=LABELS[p], capsize=2)
        b.bar(x, [c["decision_ms"] if c else np.nan for c in cells], width, label=LABELS[p])
    for ax, label in ((a, "total wait (request-steps), mean ± std over episodes"), (b, "ms per decision (median)")):
        ax.set_xticks(np.arange(len(fleets)), [f"m = {f}" for f in fleets])
        ax.set_ylabel(label, fontsize=8)
    if any(r["decision_ms"] > 0 for r in rows):
        b.set_yscale("log")
    a.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fleets", default="20,28,36")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=TEST_SEEDS[0], help="episodes use seeds first-seed, first-seed + 1, ...")
    add_setup_arguments(ap, skip=("fleet",))
    ap.add_argument("--scenario", default="sf_north")
    ap.add_argument("--quick", action="store_true", help="fleet 6, 10 steps, 1 seed, horizon 3")
    ap.add_argument("--out", default="results/routing_table")
    args = ap.parse_args(argv)
    if args.quick:
        args.fleets, args.seeds, args.steps, args.horizon, args.samples, args.cap, args.chunk = "6", 1, 10, 3, 2, 3, 5
    graph, demand = load_scenario(args.scenario)
    base = setup_from_args(args)
    seeds = tuple(range(args.first_seed, args.first_seed + args.seeds))
    out = Path(args.out)
    done = finished_cells(out.with_suffix(".json"), base, seeds)
    thresholds = fleet_thresholds(graph.hops, demand.pickup, demand.dropoff, demand.rate).as_dict()
    payload = {"scenario": graph.name, "graph": str(graph), "demand": demand.source, "setup": setup_dict(base),
               "seeds": list(seeds), "thresholds": thresholds, "machine": f"{platform.machine()}, "
               f"{jax.device_count()} x {jax.devices()[0].platform}", "jax": jax.__version__, "rows": []}
    for fleet in (int(f) for f in args.fleets.split(",")):
        for policy in args.policies.split(","):
            if (policy, fleet) not in done:
                t0 = time.time()
                done[(policy, fleet)] = run_policy(policy, graph, demand, replace(base, fleet=fleet), seeds)
                print(f"{LABELS[policy]}, m = {fleet}: {time.time() - t0:.0f} s", flush=True)
            payload["rows"] = list(done.values())
            payload["bars"] = bars(payload["rows"])
            out.parent.mkdir(parents=True, exist_ok=True)
            out.with_suffix(".json").write_text(json.dumps(payload, indent=1))
    print(format_rows(payload["rows"]))
    for b in payload["bars"]:
        print(f"m = {b['fleet']}: two-phase wait {b['wait_gap']:+.1%} vs full rollout "
              f"({'met' if b['wait_bar_met'] else 'MISSED'}), {b['speedup']:.1f}x faster "
              f"({'met' if b['speed_bar_met'] else 'MISSED'})")
    plot(payload["rows"], out.with_suffix(".png"), f"{graph.name}, {demand.rate:g} requests/step, "
         f"H = {args.horizon}, {args.samples} samples, cap {args.cap}; {len(seeds)} test episodes of {args.steps} steps")
    print(f"wrote {out}.json and {out}.png")


if __name__ == "__main__":
    main()
