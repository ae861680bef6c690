"""Scaling of batched env stepping: city-steps/s vs batch size and device count.

    python benchmarks/bench_scaling.py                 # default: ~2-3 minutes on 2 CPU cores
    python benchmarks/bench_scaling.py --full          # batches up to 16384, a whole day, 5 reps
    python benchmarks/bench_scaling.py --batches 1 16 256 --devices 1 2 --steps 36 --reps 3 --r-max 25

Cities are drawn from a `CitySpec` (`sample_city`, sizes 3x3 .. sqrt(r_max)^2,
padded to `--r-max` regions); `--pool` distinct cities get their env params
(`stack_params`: NumPy tables per city) and are cycled to fill each batch.
Each device count runs in its own subprocess with
`XLA_FLAGS=--xla_force_host_platform_device_count=D` (it must be set before
jax is imported); the batch is split over the devices with `shard_map`
(`jaxmob.core.sharding.shard_batched`; batches that do not split are skipped).
One measurement: `--steps` steps of every city under uniform random valid
actions, starting at `--start-hour` so the window covers the morning peak;
compile first (timed separately), one warm-up run, then `--reps` timed runs,
median reported (with the worker's CPU time per city-step, all threads:
less sensitive than wall time when other jobs share the cores). Forced host devices share the same CPU cores, so on a small
machine more devices cannot be faster: the numbers show the overhead of the
split, and real accelerators are needed to show speed-up.

Memory per city: bytes of one city's env state and of its env params (array
sizes of the pytrees), and the worker's peak resident set size after each batch.
Writes `results/scaling.json` and `results/scaling.png`; never asserts a time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BATCHES = (1, 16, 256, 1024, 4096)
FULL_BATCHES = (1, 16, 256, 1024, 4096, 16384)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=None, help=f"default {DEFAULT_BATCHES}")
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--steps", type=int, default=None, help="steps per run (default 36; --full: 144)")
    p.add_argument("--reps", type=int, default=None, help="timed runs per point (default 3; --full: 5)")
    p.add_argument("--r-max", type=int, default=25, help="regions per (padded) city")
    p.add_argument("--pool", type=int, default=32, help="distinct cities built, cycled to fill a batch")
    p.add_argument("--start-hour", type=float, default=7.0)
    p.add_argument("--full", action="store_true", help=f"batches {FULL_BATCHES}, 144 steps, 5 reps")
    p.add_argument("--out", default=str(REPO / "results"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.batches = args.batches or list(FULL_BATCHES if args.full else DEFAULT_BATCHES)
    args.steps = args.steps or (144 if args.full else 36)
    args.reps = args.reps or (5 if args.full else 3)
    return args


# ----------------------------------------------------------------------- worker (one device count)
def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def tree_bytes(tree) -> int:
    import jax

    return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)))


def build_pool(args):
    """(env, params of `--pool` distinct cities, spec, seconds to build)."""
    import math

    import jax

    from jaxmob.envs.rebalance.city.sample import CitySpec, sample_cities
    from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv
    from jaxmob.envs.rebalance.batch import stack_params

    side = max(3, math.isqrt(args.r_max))
    spec = CitySpec(r_max=args.r_max, cols=(3, side), rows=(3, side))
    start = time.perf_counter()
    cities = sample_cities(jax.random.key(0), spec, args.pool)
    env, params = stack_params(RebalanceEnv(RebalanceConfig()), cities)
    return env, params, spec, time.perf_counter() - start


def measure(env, pool, batch: int, mesh, args) -> dict:
    import jax

    from jaxmob.core.sharding import make_city_rollout, shard_batch, shard_batched, tile_batch

    params = shard_batch(tile_batch(pool, batch), mesh)
    keys = shard_batch(jax.random.split(jax.random.key(batch), batch), mesh)
    start_step = int(round(args.start_hour * 60 / params.city.step_minutes))
    rollout = shard_batched(make_city_rollout(env, args.steps, start_step=start_step), mesh)
    t0 = time.perf_counter()
    compiled = rollout.lower(keys, params).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(keys, params))  # warm-up
    runs, cpu = [], []
    for _ in range(args.reps):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(compiled(keys, params))
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    run_s = statistics.median(runs)
    one = jax.tree.map(lambda x: x[0], params)
    state_bytes = tree_bytes(jax.eval_shape(env.reset, jax.random.key(0), one)[1])
    return dict(batch=batch, compile_s=compile_s, run_s=run_s, runs_s=runs,
                city_steps_per_s=batch * args.steps / run_s,
                cpu_us_per_city_step=statistics.median(cpu) / (batch * args.steps) * 1e6,
                state_bytes_per_city=state_bytes,
                params_bytes_per_city=tree_bytes(params) / batch, peak_rss_mb=peak_rss_mb())


def worker(args) -> None:
    import jax

    from jaxmob.core.sharding import batch_mesh

    devices = jax.device_count()
    env, pool, spec, pool_s = build_pool(args)
    mesh = batch_mesh()
    header = dict(kind="header", devices=devices, backend=jax.default_backend(), pool_build_s=pool_s,
                  pipeline_steps=env.config.pipeline_steps, max_trips=env.config.max_trips_per_step,
                  r_max=spec.r_max, cols=spec.cols, rows=spec.rows)
    print(json.dumps(header), flush=True)
    for batch in args.batches:
        if batch % devices:
            print(json.dumps(dict(kind="row", batch=batch, devices=devices, skipped="batch does not split")),
                  flush=True)
            continue
        row = measure(env, pool, batch, mesh, args)
        print(json.dumps(dict(kind="row", devices=devices, **row)), flush=True)


# ----------------------------------------------------------------------- driver
def run_worker(devices: int, args) -> list[dict]:
    from jaxmob.core.sharding import cpu_devices_env

    env = cpu_devices_env(devices)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--batches", *map(str, args.batches),
           "--steps", str(args.steps), "--reps", str(args.reps), "--r-max", str(args.r_max), "--pool", str(args.pool),
           "--start-hour", str(args.start_hour)]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker with {devices} devices failed:\n{done.stderr[-4000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def print_table(results: dict, args) -> None:
    print(f"\n{'devices':>7} {'batch':>6} {'compile s':>10} {'run s':>8} {'city-steps/s':>13} {'CPU us/c-s':>10} "
          f"{'state B/city':>12} {'params B/city':>13} {'peak RSS MB':>11}")
    for devices, rows in results.items():
        for r in rows:
            if r.get("skipped"):
                print(f"{devices:>7} {r['batch']:>6} {'skipped: ' + r['skipped']:>40}")
                continue
            print(f"{devices:>7} {r['batch']:>6} {r['compile_s']:>10.2f} {r['run_s']:>8.4f} "
                  f"{r['city_steps_per_s']:>13,.0f} {r['cpu_us_per_city_step']:>10.2f} {r['state_bytes_per_city']:>12,} "
                  f"{r['params_bytes_per_city']:>13,.0f} {r['peak_rss_mb']:>11,.0f}")
    print(f"\n{args.steps} steps per run from {args.start_hour:g}h, median of {args.reps} runs after compile + warm-up")


def plot(results: dict, path: Path, title: str) -> None:
    sys.path.insert(0, str(REPO))
    from jaxmob.plots import plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    panels = (("city_steps_per_s", "city-steps / s"), ("compile_s", "compile s"), ("peak_rss_mb", "peak RSS (MB)"))
    for devices, rows in results.items():
        ok = [r for r in rows if not r.get("skipped")]
        for ax, (key, _) in zip(axes, panels):
            ax.plot([r["batch"] for r in ok], [r[key] for r in ok], "o-", label=f"{devices} device(s)")
    for ax, (_, ylabel) in zip(axes, panels):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("cities in the batch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    axes[0].set_yscale("log")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse(argv)
    if args.worker:
        worker(args)
        return
    results, headers = {}, {}
    for devices in args.devices:
        t0 = time.perf_counter()
        lines = run_worker(devices, args)
        headers[devices] = next(l for l in lines if l["kind"] == "header")
        results[devices] = [l for l in lines if l["kind"] == "row"]
        print(f"{devices} device(s): done in {time.perf_counter() - t0:.0f} s")
    print_table(results, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    h = next(iter(headers.values()))
    machine = dict(cpus=os.cpu_count(), platform=platform.platform(), python=platform.python_version())
    try:
        import jax

        machine["jax"] = jax.__version__
    except ImportError:
        pass
    summary = dict(config=dict(batches=args.batches, devices=args.devices, steps=args.steps, reps=args.reps,
                               r_max=args.r_max, pool=args.pool, start_hour=args.start_hour, full=args.full),
                   machine=machine, workers={str(d): headers[d] for d in headers},
                   rows=[dict(r) for rows in results.values() for r in rows])
    (out / "scaling.json").write_text(json.dumps(summary, indent=1) + "\n")
    title = (f"RebalanceEnv, random valid actions, sampled cities of <= {h['r_max']} regions, "
             f"{args.steps} steps from {args.start_hour:g}h; {machine['cpus']} CPU cores, forced host devices")
    plot(results, out / "scaling.png", title)
    print(f"wrote {out / 'scaling.json'} and {out / 'scaling.png'}")


if __name__ == "__main__":
    main()
