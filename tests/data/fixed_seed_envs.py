"""Record fixed-seed runs of one algorithm per environment (and the routing planners).

`python tests/data/fixed_seed_envs.py OUT.json [ENV ...]` writes the numbers of the code
it runs with: it was run on commit d1b3464 (before the layered refactor of issue 24)
to make `fixed_seed_envs.json`, and `tests/test_cli_runs.py` checks that the code of
today reproduces them through `jaxmob train`. It uses only APIs both versions share.
The amod entry was recorded again by issue 25, which changed that env's semantics on
purpose (the benchmark's timing, 19 decisions, relay rebalancing, META's paper dispatch).
The parking entry was recorded again by issue 28, which did the same (FIFO and SIRO as orders of
service, the scenario recalibrated under them, metrics per CBD / Southbank / periphery, the
core's success as the headline).
"""
from __future__ import annotations

import json
import sys
import tempfile

import jax
import numpy as np

RUNS = {  # env -> (TrainConfig values): tiny budgets, bundled scenarios
    "taxi": dict(env="taxi", alg="mappo", scenario="amod-nyc-brooklyn", total_updates=2, updates_per_chunk=1,
                 num_envs=2, rollout_steps=12, epochs=1, minibatches=2, hidden=(16,), eval_episodes=2, num_taxis=300,
                 reward="both"),  # the default when recorded
    "amod": dict(env="amod", alg="meta", scenario="nyc_brooklyn", total_updates=2, updates_per_chunk=1, num_envs=2,
                 rollout_steps=19, hidden=(16,), buffer_size=64, batch_size=16, gradient_steps=2, eval_episodes=2),
    "parking": dict(env="parking", alg="marl_gcn", scenario="melbourne", total_updates=2, updates_per_chunk=1, num_envs=2, rollout_steps=10,
                    hidden=(16,), buffer_size=64, batch_size=8, gradient_steps=2, eval_episodes=2,
                    episode_minutes=60),
}


def run(values: dict) -> dict:
    from jaxmob.config import TrainConfig
    from jaxmob.train import train

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(**values, progress=False, out_dir=tmp + "/run")
        r = train(config, log=lambda *_: None)
        rows = [json.loads(line) for line in open(tmp + "/run/metrics.jsonl") if line.strip()]
    headline = r["headline"]
    leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(r["runner"].params)]
    return {"train": rows, "validation": r["final_eval"][headline], "test": r["test"][headline],
            "test_sampled": r["test"]["sampled"]["mean"][headline]["mean"],
            "param_abs": float(sum(np.abs(x).sum() for x in leaves)), "headline": headline}


def routing() -> dict:
    from jaxmob.envs.routing.evaluate import RoutingSetup, run_policy
    from jaxmob.envs.routing.task import load_scenario

    graph, demand = load_scenario("sf_north")
    setup = RoutingSetup(fleet=12, steps=20, horizon=6, samples=2, chunk=10)
    rows = [run_policy(p, graph, demand, setup, (2000,)) for p in ("ia_ra", "two_phase")]
    return {r["policy"]: r["episodes"] for r in rows}


if __name__ == "__main__":
    chosen = sys.argv[2:] or list(RUNS) + ["routing"]  # re-record only these (the others are kept)
    try:
        with open(sys.argv[1]) as fh:
            out = json.load(fh)
    except FileNotFoundError:
        out = {}
    out.update({env: run(values) for env, values in RUNS.items() if env in chosen})
    if "routing" in chosen:
        out["routing"] = routing()
    with open(sys.argv[1], "w") as fh:
        json.dump(out, fh, indent=1)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "train"} for k, v in out.items()}, indent=1))
