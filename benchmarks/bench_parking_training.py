"""Where a parking learner's update spends its time: one off-policy update (num_envs x
rollout_steps steps of the training env, then the gradient steps), the same rollout with the
learner's actor and with fixed bids (+1, FIFO), and one whole validation day, on a bundled
scenario. Everything compiles first; medians over repetitions.

    python benchmarks/bench_parking_training.py                        # MARL-GCN on the weekday peak
    python benchmarks/bench_parking_training.py --alg maddpg --scenario melbourne
"""
from __future__ import annotations

import argparse
import platform

import jax
import jax.numpy as jnp

from jaxmob.config import TrainConfig
from jaxmob.train import build, hyper_of, make_evaluator

from bench_train import timed  # (benchmarks/ is the script's own folder)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alg", default="marl_gcn")
    ap.add_argument("--scenario", default="melbourne-weekday-peak")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    cfg = TrainConfig(env="parking", scenario=args.scenario, alg=args.alg, progress=False).validate()
    parts = build(cfg)
    runner = jax.jit(parts["init"])(jax.random.key(0), hyper_of(cfg))
    chunk = jax.jit(parts["update_chunk"], static_argnums=1)
    env, params, policy, B = parts["env"], parts["env_params"], parts["policy"], cfg.num_envs
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(1), B), params)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def rollout(bids):
        def body(carry, key):
            s, o = carry
            o2, s2, reward, _, _ = step(jax.random.split(key, B), s, bids(o, key), params)
            return (s2, o2), reward.sum()
        return jax.jit(lambda: jax.lax.scan(body, (state, obs), jax.random.split(jax.random.key(2), cfg.rollout_steps))[1])

    evaluate = make_evaluator(policy, parts["eval_env"], dict(list(parts["eval_params"].items())[:1]))
    rows = {
        f"one update ({B} envs x {cfg.rollout_steps} steps, {cfg.gradient_steps} gradient steps)":
            timed(lambda: chunk(runner, 1), reps=args.reps),
        f"the rollout alone, the learner's actor": timed(rollout(
            lambda o, k: policy.act(runner.params, runner.groups, o, None, k, True)), reps=args.reps),
        f"the rollout alone, every bid +1 (FIFO)": timed(rollout(lambda o, k: jnp.ones(o.shape[:2])), reps=args.reps),
        "one whole validation day (840 minutes, argmax)": timed(
            lambda: evaluate(runner.params, runner.groups, jax.random.key(0))["success_rate"], reps=args.reps),
    }
    print(f"# {args.alg} on parking {args.scenario}, {platform.machine()}, {jax.devices()[0].platform} x "
          f"{jax.device_count()}, jax {jax.__version__} (median of {args.reps})\n")
    print("| part | seconds |\n|---|---|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
