"""Where a taxi DPG learner's deployed distribution puts its mass, read from a sweep's checkpoint.

A sweep (`experiments/taxi_learners.py`, `jaxmob sweep`) keeps its newest state in
`<run dir>/checkpoint` while it trains. This reads one seed's actor from it, drives the
scenario's first `--steps` steps with that actor (each taxi drawing from its distribution),
then prints the mean distribution of the idle taxis over the 7 moves (0 = stay, 1-6 = the
neighbours) and how peaked it is. A learner whose actor has settled on one direction for
every cell shows it here long before its test table does.

    python experiments/taxi_actor_spread.py runs/taxi-learners-nyc-jan2016@6000-ddpg
"""
from __future__ import annotations

import argparse
from pathlib import Path

import jax
import numpy as np

from jaxmob.config import TrainConfig
from jaxmob.train import build


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--seed-index", type=int, default=0, help="which of the sweep's runs")
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args(argv)
    import orbax.checkpoint as ocp

    where = Path(args.run_dir).resolve() / "checkpoint"
    saved = ocp.CheckpointManager(where)
    step = saved.latest_step()
    if step is None:
        raise SystemExit(f"{args.run_dir}/checkpoint holds no checkpoint (a finished sweep removes its own)")
    state = ocp.StandardCheckpointer().restore(where / str(step) / "state")
    params = jax.tree.map(lambda x: x[args.seed_index], state["params"])
    # the sweep's own config, as its checkpoint names it (read back as `report.run_config` reads a run's)
    saved_config = saved.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]["identity"]["config"]
    config = TrainConfig(**saved_config).validate()
    if config.env != "taxi":
        raise SystemExit(f"{args.run_dir} is a sweep of env {config.env!r}, not taxi")
    parts = build(config)
    if not hasattr(parts["policy"], "action"):
        raise SystemExit(f"{config.alg} is not a DPG learner: its policy has no distribution to read here")
    env, env_params, policy = parts["env"], parts["env_params"], parts["policy"]
    obs, env_state = env.reset(jax.random.key(0), env_params)
    key = jax.random.key(1)
    for _ in range(args.steps):
        key, k_act, k_env = jax.random.split(key, 3)
        action = policy.act(params, None, obs, None, k_act, True)
        obs, env_state, *_ = env.step(k_env, env_state, action, env_params)
    table, index = env.distinct_observations(env_state, env_params)
    idle = np.asarray((env_state.busy == 0) & env_params.taxi_mask)
    dist = np.asarray(policy.action(params, table))[np.asarray(index)[idle]]
    print(f"{args.run_dir} ({config.alg} on {config.scenario}), chunk {step}, seed index {args.seed_index}, {idle.sum()} idle taxis after {args.steps} steps")
    print("mean distribution (stay, 6 neighbours):", " ".join(f"{p:.3f}" for p in dist.mean(0)))
    print(f"mean top probability {dist.max(-1).mean():.3f}; taxis whose top move is stay {(dist.argmax(-1) == 0).mean():.3f}")


if __name__ == "__main__":
    main()
