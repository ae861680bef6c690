"""Training throughput: the fused trainer vs. its parts, measured in the same run.

For one update (PPO: num_envs x rollout_steps env steps, then epochs x
minibatches gradient steps; the off-policy core: its rollout, replay and gradient steps) this times
  * the whole fused update (rollout + GAE + learning),
  * the environment alone (the same rollout with uniformly random actions),
  * for the PPO core, the networks alone (policy forward for every rollout step, then the same
    epochs of forward+backward+Adam on a stored trajectory),
and prints agent-steps/s and the ratios. Where the policy treats agents alike and the env
groups agents by observation (MADARL, or the soft actor-critic whose replay then keeps the
distinct rows, on taxi), the fused update is also timed with its
networks run once per agent instead of once per distinct observation, in the same run.
Everything compiles first; the table reports medians over repetitions.

    python benchmarks/bench_train.py --alg mappo --scenario manhattan-citibike
    python benchmarks/bench_train.py --env taxi --alg madarl --scenario nyc-hex-synthetic --set num_taxis=10000
    python benchmarks/bench_train.py --env taxi --alg sac_discrete --scenario nyc-jan2016 --set num_taxis=6000 \
        --set buffer_size=288 --set batch_size=16 --set gradient_steps=10
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

from jaxmob.algos.ppo import Transition, gae, make_optimizer, ppo_loss, sample_actions
from jaxmob.config import TrainConfig
from jaxmob.core.env import runs_per_distinct_observation
from jaxmob.train import build, hyper_of


def timed(fn, *args, reps: int):
    jax.block_until_ready(fn(*args))  # compile + warm up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="rebalance")
    ap.add_argument("--alg", default="mappo")
    ap.add_argument("--scenario", default="manhattan-citibike")
    ap.add_argument("--num-envs", type=int, default=None, help="default: the env's training default")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="any other TrainConfig or env option, e.g. num_taxis=10000 (integers and floats parsed)")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)

    extra = {}
    for item in args.set:
        name, _, value = item.partition("=")
        for kind in (int, float, str):
            try:
                extra[name] = kind(value)
                break
            except ValueError:
                pass
    if args.num_envs:
        extra["num_envs"] = args.num_envs
    cfg = TrainConfig(env=args.env, alg=args.alg, scenario=args.scenario, total_updates=1, updates_per_chunk=1,
                      **extra).validate()
    parts = build(cfg)
    env, params, policy = parts["env"], parts["env_params"], parts["policy"]
    B, T = cfg.num_envs, cfg.rollout_steps
    agent_mask = env.agents(params).mask
    R = int(np.sum(np.asarray(agent_mask)))
    agent_steps = B * T * R
    runner = jax.jit(parts["init"])(jax.random.PRNGKey(0), hyper_of(cfg))
    mask, prior = env.agents(params).action_mask, env.agents(params).logit_prior

    full = jax.jit(parts["update_chunk"], static_argnums=1)
    t_full = timed(lambda r: full(r, 1)[1], runner, reps=args.reps)
    t_per_agent = None
    if runs_per_distinct_observation(policy, env) and cfg.distinct_observations:
        slow = build(replace(cfg, distinct_observations=False))  # its own runner: an off-policy replay's shape differs
        per_agent = jax.jit(slow["update_chunk"], static_argnums=1)
        t_per_agent = timed(lambda r: per_agent(r, 1)[1], jax.jit(slow["init"])(jax.random.PRNGKey(0), hyper_of(cfg)),
                            reps=args.reps)

    @jax.jit
    def env_only(key):
        _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, B), params)

        def step(state, k):
            ka, ks = jax.random.split(k)
            a = jax.random.categorical(ka, jnp.where(mask, 0.0, -jnp.inf), shape=(B,) + mask.shape[:1]).astype(jnp.int32)
            _, state, reward, _, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(ks, B), state, a, params)
            return state, reward.sum()

        return jax.lax.scan(step, state, jax.random.split(key, T))[1]

    t_env = timed(env_only, jax.random.PRNGKey(1), reps=args.reps)

    ppo = cfg.algorithm.core.name == "ppo"
    t_net = ppo_networks_alone(cfg, env, params, policy, runner, args.reps) if ppo else None
    parts_timed = [("full fused update", t_full), ("environment alone", t_env)]
    if t_per_agent is not None:
        parts_timed.insert(1, ("full update, networks per agent", t_per_agent))
    if t_net is not None:
        parts_timed.append(("networks fwd+bwd alone, per agent", t_net))
    print(f"machine: {platform.processor() or platform.machine()}, {jax.device_count()} x {jax.devices()[0].platform}, "
          f"jax {jax.__version__}")
    print(f"{args.alg} on {args.env}/{args.scenario}: B={B} envs x {T} steps x {R} agents = {agent_steps:,} agent-steps "
          f"per update" + (f", {cfg.epochs} epochs x {cfg.minibatches} minibatches" if ppo
                           else f" ({cfg.algorithm.core.name} core: the networks-alone split is PPO's only)"))
    print(f"{'part':<40}{'median s/update':>16}{'agent-steps/s':>16}{'share of full':>15}")
    for name, t in parts_timed:
        print(f"{name:<40}{t:>16.3f}{agent_steps / t:>16,.0f}{t / t_full:>15.2f}")
    if t_per_agent is not None:
        print(f"networks once per distinct observation: {t_per_agent / t_full:.2f} x faster than once per agent")
    if t_net is not None:
        print(f"env + nets = {(t_env + t_net) / t_full:.2f} x full "
              "(the rest is GAE, shuffling and fusion overhead/savings)")


def ppo_networks_alone(cfg, env, params, policy, runner, reps: int) -> float:
    """Median seconds of one PPO update's network work alone: the policy forward for every
    rollout step, then the epochs of forward+backward+Adam on a stored random trajectory."""
    B, T = cfg.num_envs, cfg.rollout_steps
    agent_mask = env.agents(params).mask
    mask, prior = env.agents(params).action_mask, env.agents(params).logit_prior
    obs = jnp.asarray(np.random.default_rng(0).normal(size=(T, B) + runner.obs.shape[1:]), jnp.float32)
    gstate = jax.vmap(env.global_state, in_axes=(0, None))(runner.env_state, params)
    gstate = jnp.broadcast_to(gstate, (T,) + gstate.shape)
    optimizer = make_optimizer(cfg.max_grad_norm)

    @jax.jit
    def nets_only(p, opt_state, key):
        def act(_, xs):
            o, g, k = xs
            return None, sample_actions(k, policy, p, runner.groups, o, g, mask, prior)

        _, (a, logp, v) = jax.lax.scan(act, None, (obs, gstate, jax.random.split(key, T)))
        traj = Transition(obs, gstate, a, logp, v, jnp.ones_like(v), jnp.zeros((T, B), bool))
        adv, ret = gae(traj.reward, v, traj.done, v[-1], 0.995, 0.95)
        n = T * B
        flat = jax.tree.map(lambda x: x.reshape((cfg.minibatches, n // cfg.minibatches) + x.shape[2:]), (traj, adv, ret))

        def epoch(carry, _):
            def mb(carry, batch):
                p, s = carry
                g, _ = jax.grad(ppo_loss, has_aux=True)(p, policy, runner.groups, batch[0], batch[1], batch[2], mask,
                                                        prior, agent_mask, runner.hyper, 10.0)
                u, s = optimizer.update(g, s, p)
                return (jax.tree.map(jnp.add, p, u), s), None

            return jax.lax.scan(mb, carry, flat)[0], None

        return jax.lax.scan(epoch, (p, opt_state), None, cfg.epochs)[0][0]

    return timed(nets_only, runner.params, runner.opt_state, jax.random.PRNGKey(2), reps=reps)


if __name__ == "__main__":
    main()
