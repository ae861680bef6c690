"""Running routing policies: episodes, per-decision timing, tables and plots.

An episode starts with the fleet at intersections drawn from the drop-off
distribution and an empty queue, and runs `steps` decisions. Its requests
are either drawn from the demand model, from keys folded from the episode's
seed (not from the policy), or replayed from a real day (`Episode.arrivals`),
so every policy faces the same requests; a rollout's sampled futures come
from a key of their own, and always from the demand model (the forecast).
Steps run in compiled chunks (a progress bar advances per chunk); the
decision time is the median wall time of a chunk after the first (which
compiles) divided by its steps, env step included (well under a millisecond).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import env as E
from .policies import ARRIVAL_SLOTS, ia, ia_ra, rollout_targets
from .two_phase import phase_one_rollout_targets, sectors_for, two_phase_targets

POLICIES = ("ia", "ia_ra", "rollout", "rollout_phase_one", "two_phase")
LABELS = {"ia": "IA", "ia_ra": "IA-RA", "rollout": "one-at-a-time rollout (full map)",
          "rollout_phase_one": "phase one + full-map rollout", "two_phase": "two-phase rollout"}
TEST_SEEDS = (2000, 2001, 2002, 2003, 2004)


@dataclass(frozen=True, eq=False)
class Episode:
    """One evaluation episode: `seed` places the fleet and seeds the planners' sampled futures (and
    the requests, unless `arrivals` replays a real day's: (count (T,), pick (T, A), drop (T, A)))."""

    name: str
    seed: int
    arrivals: tuple | None = None


def seed_episodes(seeds) -> list:
    """Episodes of the demand model, one per seed."""
    return [Episode(f"seed {s}", int(s)) for s in seeds]


@dataclass(frozen=True)
class RoutingSetup:
    """What an evaluation runs: fleet, episode and planner settings."""

    fleet: int = 28
    steps: int = 120  # decisions per episode
    queue: int = 64  # request queue capacity (a full queue turns requests away, counted)
    horizon: int = 30  # rollout: steps simulated per Q-factor (truncated horizon)
    samples: int = 4  # rollout: sampled futures per Q-factor
    cap: int = 6  # two-phase: most taxis one sector rollout handles (sets the number of sectors)
    sector_queue: int = 16  # two-phase: waiting requests a sector rollout sees (its oldest)
    chunk: int = 10  # decisions per compiled chunk (progress and timing granularity)

    def check(self) -> None:
        for name in ("fleet", "steps", "queue", "horizon", "samples", "cap", "sector_queue", "chunk"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.steps % self.chunk:
            raise ValueError(f"steps ({self.steps}) must be a multiple of chunk ({self.chunk})")


SETUP_HELP = {"fleet": "taxis", "steps": "decisions per episode", "queue": "request queue capacity",
              "horizon": "rollout horizon in steps", "samples": "sampled futures per Q-factor",
              "cap": "two-phase: taxis per sector rollout (sets the number of sectors)",
              "sector_queue": "two-phase: waiting requests a sector rollout sees",
              "chunk": "decisions per compiled chunk (timing: every chunk after the first)"}


def add_setup_arguments(parser, skip=(), **defaults) -> None:
    """One `--flag` per `RoutingSetup` field (its default unless given here)."""
    base = asdict(RoutingSetup())
    for name, help_text in SETUP_HELP.items():
        if name not in skip:
            default = defaults.get(name, base[name])
            parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default,
                                help=f"{help_text} (default {default})")


def setup_from_args(args, **fixed) -> RoutingSetup:
    values = {n: getattr(args, n) for n in SETUP_HELP if hasattr(args, n)}
    return RoutingSetup(**{**values, **fixed})


def finished_cells(path: Path, setup: RoutingSetup, episodes) -> dict:
    """{(policy, fleet): row} of an earlier run's JSON with the same setup and episodes (resuming)."""
    path = Path(path)
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    names = old.get("episodes") or [f"seed {s}" for s in old.get("seeds", [])]  # (JSON written before replays)
    if old.get("setup") != setup_dict(setup) or names != [e.name for e in episodes]:
        return {}
    return {(r["policy"], r["fleet"]): r for r in old["rows"]}


def make_decide(policy: str, graph, demand, params, setup: RoutingSetup, mesh=None):
    """`decide(key, state) -> (targets, assigned)` of a named policy."""
    if policy == "ia":
        return lambda key, s: ia(s, params)
    if policy == "ia_ra":
        return lambda key, s: ia_ra(s, params)
    if policy == "rollout":
        return lambda key, s: rollout_targets(key, s, params, setup.horizon, setup.samples)
    if policy in ("two_phase", "rollout_phase_one"):
        sectors = sectors_for(graph, demand.pickup, setup.fleet, setup.cap)
        if policy == "rollout_phase_one":
            return lambda key, s: phase_one_rollout_targets(key, s, params, sectors, setup.cap, setup.horizon,
                                                            setup.samples)
        return lambda key, s: two_phase_targets(key, s, params, sectors, setup.cap, setup.sector_queue,
                                                setup.horizon, setup.samples, mesh=mesh)
    raise ValueError(f"unknown routing policy {policy!r}; choose from {', '.join(POLICIES)}")


def start_state(graph, demand, setup: RoutingSetup, seed: int) -> E.RoutingState:
    nodes = np.random.default_rng(seed).choice(graph.num_nodes, setup.fleet, p=demand.dropoff)
    return E.initial_state(nodes, setup.queue)


def make_chunk(decide, params, steps: int, record=None):
    """jit((state, seed, arrivals) -> (state, outstanding per step)) for `steps` decisions; the
    arrivals are replayed ((count, pick, drop) with a leading axis of `steps`) or, given None,
    drawn from the demand model. With `record(state, targets, assigned)`, each step's outstanding
    count comes with that record of the state it started from and the decision taken there."""

    @jax.jit
    def chunk(state, seed, arrivals):
        def go(s, replayed):
            arrival_key = jax.random.fold_in(jax.random.key(seed), s.t)
            plan_key = jax.random.fold_in(jax.random.key(seed + 7_919), s.t)
            targets, assigned = decide(plan_key, s)
            new = (E.sample_arrivals(arrival_key, params, ARRIVAL_SLOTS) if replayed is None
                   else E.Arrivals(*replayed))
            nxt, outstanding = E.step(s, targets, assigned, new, params)
            return nxt, outstanding if record is None else (outstanding, record(s, targets, assigned))

        return jax.lax.scan(go, state, arrivals, length=steps)

    return chunk


def run_policy(policy: str, graph, demand, setup: RoutingSetup, seeds=TEST_SEEDS, mesh=None, progress=None,
               episodes: list | None = None) -> dict:
    """Episodes of one policy (`episodes`, default one of the demand model per seed): per-episode
    metrics, the outstanding-request curves and the decision time."""
    setup.check()
    episodes = seed_episodes(seeds) if episodes is None else episodes
    params = E.params_from(graph, demand)
    chunk = make_chunk(make_decide(policy, graph, demand, params, setup, mesh), params, setup.chunk)
    rows, curves, times = [], [], []
    for k, episode in enumerate(episodes):
        if episode.arrivals is not None and len(episode.arrivals[0]) != setup.steps:
            raise ValueError(f"{episode.name}: {len(episode.arrivals[0])} steps of arrivals for {setup.steps} steps")
        state, costs = start_state(graph, demand, setup, episode.seed), []
        for c in range(setup.steps // setup.chunk):
            block = None if episode.arrivals is None else tuple(
                jnp.asarray(a[c * setup.chunk:(c + 1) * setup.chunk]) for a in episode.arrivals)
            t0 = time.perf_counter()
            state, cost = chunk(state, jnp.int32(episode.seed), block)
            cost = np.asarray(cost)
            if c or k:
                times.append((time.perf_counter() - t0) / setup.chunk)
            costs.append(cost)
            if progress is not None:
                progress.update(setup.chunk)
        s = jax.device_get(state)
        if not bool(E.conserved(state)):
            raise AssertionError(f"{policy}: requests not conserved in episode {episode.name}")
        curve = np.concatenate(costs)
        arrived = int(s.arrived)
        rows.append({"episode": episode.name, "seed": episode.seed, "total_wait": int(s.wait), "arrived": arrived,
                     "delivered": int(s.delivered), "outstanding_end": int(curve[-1]), "turned_away": int(s.turned_away),
                     "mean_wait": float(s.wait) / max(arrived, 1)})
        curves.append(curve.tolist())
    total = np.array([e["total_wait"] for e in rows], float)
    return {"policy": policy, "label": LABELS[policy], "fleet": setup.fleet, "episodes": rows, "curves": curves,
            "total_wait_mean": float(total.mean()), "total_wait_std": float(total.std()),
            "mean_wait": float(np.mean([e["mean_wait"] for e in rows])),
            "decision_ms": float(np.median(times) * 1e3) if times else float("nan")}


def format_rows(rows: list) -> str:
    lines = [f"{'policy':<34} {'fleet':>5} {'total wait (steps)':>20} {'wait/request':>12} {'delivered':>9} "
             f"{'left waiting':>12} {'ms/decision':>11}"]
    for r in rows:
        eps = r["episodes"]
        lines.append(f"{r['label']:<34} {r['fleet']:>5} {r['total_wait_mean']:>11.1f} ± {r['total_wait_std']:>6.1f} "
                     f"{r['mean_wait']:>12.2f} {np.mean([e['delivered'] for e in eps]):>9.1f} "
                     f"{np.mean([e['outstanding_end'] for e in eps]):>12.1f} {r['decision_ms']:>11.2f}")
    return "\n".join(lines)


def plot_curves(rows: list, path, thresholds=None, title: str = "") -> Path:
    """Outstanding requests over time, mean and std over episodes, one line per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in rows:
        c = np.array(r["curves"], float)
        m, s = c.mean(0), c.std(0)
        x = np.arange(1, c.shape[1] + 1)
        line, = ax.plot(x, m, label=f"{r['label']}, m={r['fleet']}")
        ax.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("step (one edge of driving)")
    ax.set_ylabel("outstanding requests")
    if thresholds:
        title += f"  (necessary m > {thresholds['necessary_fleet'] - 1}, sufficient m >= {thresholds['sufficient_fleet']})"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_json(path, payload: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))
    return path


def setup_dict(setup: RoutingSetup) -> dict:
    return asdict(setup)
