"""Train on many cities, test on real ones: zero-shot transfer of one shared policy.

One IPPO policy (a shared actor without agent id and a critic on the local
observation, so it applies to a city of any size) is trained by
`jaxmob.parallel.make_dp_train` on synthetic cities drawn from a `CitySpec`
distribution: every update draws a fresh batch of cities from a sampled pool.
It is then evaluated, with no further training, on the held-out replay days of
manhattan-citibike and jersey-city-citibike, against

* the same network trained by the same trainer, for the same updates and
  city-days, on that real city directly (its non-evaluation days replayed);
* the policy trained directly on the *other* real city (transfer between real cities);
* no-op and greedy.

The static city features differ between sampled and real cities, so every
policy here observes without them (`obs_features=False`); the rest of the
observation is in units of the region's docks, so it means the same in any city.

    python experiments/zero_shot_transfer.py          # the committed run
    python experiments/zero_shot_transfer.py --quick  # a smoke run (about a minute)
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import jax
import numpy as np

from jaxmob.algos.policies import SharingPolicy
from jaxmob.algos.ppo import PPOConfig
from jaxmob.envs.rebalance.city import load
from jaxmob.envs.rebalance.city.sample import CitySpec, sample_cities
from jaxmob.config import TrainConfig
from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv, RebalanceShaping
from jaxmob.envs.rebalance.batch import stack_params
from jaxmob.core.sharding import batch_size
from jaxmob.parallel import jit_dp_train, make_dp_train, restart_cities
from jaxmob.report import baseline_rows, mean_rows
from jaxmob.train import hyper_of, make_evaluator

TARGETS = ("manhattan-citibike", "jersey-city-citibike")
# Wide enough to hold both targets: Jersey City has ~21 trips and ~59 docks per
# region and day, Manhattan ~700 trips and ~225 docks; both start 30% full.
SPEC = CitySpec(r_max=64, grid="square", cols=(3, 8), rows=(3, 8), trips_per_region=(15.0, 900.0),
                docks_per_region=(30, 300), fill=(0.2, 0.5), name="sampled")
QUICK_SPEC = replace(SPEC, r_max=16, cols=(3, 4), rows=(3, 4))


def env_for(mode: str, cfg: TrainConfig) -> RebalanceEnv:
    return RebalanceEnv(RebalanceConfig(mode=mode, horizon=cfg.horizon, move_amounts=tuple(cfg.move_amounts),
                                        obs_features=False),
                        RebalanceShaping(cfg.reward_sharing, cfg.credit_window, cfg.credit_model))


def train_on_pool(env, pool, cfg: TrainConfig, *, batch: int, updates: int, seed: int, desc: str):
    """`updates` PPO updates of one IPPO policy; each update runs `batch` city-days
    drawn (with replacement when the pool is smaller) from the params batch `pool`.
    Returns (policy params, per-update training service ratio)."""
    from tqdm.auto import tqdm

    n = batch_size(pool.city.region_mask)
    R = pool.city.region_mask.shape[-1]
    policy = SharingPolicy("ippo", R, env.num_actions(jax.tree.map(lambda x: x[0], pool)), tuple(cfg.hidden))
    ppo = PPOConfig(num_envs=batch, rollout_steps=cfg.horizon, epochs=cfg.epochs, minibatches=cfg.minibatches,
                    max_grad_norm=cfg.max_grad_norm, reward_scale=cfg.reward_scale)
    init, update = jit_dp_train(*make_dp_train(env, policy, ppo), None)
    restart = jax.jit(partial(restart_cities, env))
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)

    def draw():
        return jax.tree.map(lambda x: x[rng.choice(n, batch, replace=n < batch)], pool)

    cities = draw()
    runner = init(key, hyper_of(cfg), cities)
    curve = []
    for u in tqdm(range(updates), desc=desc, unit="upd"):
        if u:
            cities = draw()
            runner = restart(runner, cities, jax.random.fold_in(key, u))
        runner, metrics = update(runner, cities)
        curve.append(float(metrics["service_ratio"]))
    return runner.params, curve


def evaluate_on(params, scenario, cfg: TrainConfig, seed: int) -> dict:
    """Argmax policy on the scenario's evaluation days (replay), mean and per day."""
    env = env_for("replay", cfg)
    city = scenario.city
    eval_params = {d: env.make_params(city, days=[scenario.day(d)], alpha=cfg.alpha, beta=cfg.beta)
                   for d in scenario.test_days}
    policy = SharingPolicy("ippo", city.num_regions, env.num_actions(next(iter(eval_params.values()))), tuple(cfg.hidden))
    return make_evaluator(policy, env, eval_params)(params, policy.groups(), jax.random.key(10_000 + seed))


def real_pool(scenario, cfg: TrainConfig):
    """Params of one real city replaying its non-evaluation days (the direct arm)."""
    train_days = [scenario.day(d) for d in scenario.days if d not in scenario.test_days]
    return stack_params(env_for("replay", cfg), [scenario.city], days=[train_days], alpha=cfg.alpha, beta=cfg.beta)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--updates", type=int, default=150)
    ap.add_argument("--batch", type=int, default=16, help="city-days per update (every arm)")
    ap.add_argument("--pool", type=int, default=256, help="sampled cities the distribution arm draws from")
    ap.add_argument("--quick", action="store_true", help="tiny cities, 2 updates, 1 seed: checks the pipeline only")
    ap.add_argument("--out", default="results/zero_shot_transfer")
    args = ap.parse_args(argv)
    spec = SPEC
    if args.quick:
        args.seeds, args.updates, args.batch, args.pool, spec = 1, 2, 4, 8, QUICK_SPEC
    # the committed results learn from the env reward alone: they were measured before move credit
    cfg = TrainConfig(alg="ippo", move_credit=0.0).validate()
    scenarios = {name: load(name) for name in TARGETS}

    t0 = time.perf_counter()
    env_b, pool = stack_params(env_for("poisson", cfg), sample_cities(jax.random.key(2026), spec, args.pool),
                               alpha=cfg.alpha, beta=cfg.beta)
    pool_s = time.perf_counter() - t0
    real = {name: real_pool(s, cfg) for name, s in scenarios.items()}

    arms = {"distribution": {}, **{f"direct:{n}": {} for n in TARGETS}}
    curves = {arm: [] for arm in arms}
    for seed in range(args.seeds):
        trained = {}
        t0 = time.perf_counter()
        trained["distribution"], c = train_on_pool(env_b, pool, cfg, batch=args.batch, updates=args.updates,
                                                   seed=seed, desc=f"sampled cities s{seed}")
        curves["distribution"].append(c)
        arms["distribution"].setdefault("train_s", []).append(time.perf_counter() - t0)
        for name in TARGETS:
            t0 = time.perf_counter()
            trained[f"direct:{name}"], c = train_on_pool(*real[name], cfg, batch=args.batch, updates=args.updates,
                                                         seed=seed, desc=f"{name} s{seed}")
            curves[f"direct:{name}"].append(c)
            arms[f"direct:{name}"].setdefault("train_s", []).append(time.perf_counter() - t0)
        for arm, params in trained.items():
            for name in TARGETS:
                ev = evaluate_on(params, scenarios[name], cfg, seed)
                arms[arm].setdefault(name, []).append(ev)

    results = {
        "spec": {k: v for k, v in asdict(spec).items()}, "pool": args.pool, "seeds": args.seeds,
        "updates": args.updates, "city_days_per_update": args.batch,
        "env_steps_per_run": args.updates * args.batch * cfg.horizon, "pool_build_s": pool_s,
        "train_config": {k: getattr(cfg, k) for k in ("lr", "ent_coef", "epochs", "minibatches", "hidden",
                                                        "reward_sharing", "alpha", "beta", "move_amounts")},
        "machine": f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}",
        "targets": {},
    }
    for name, scenario in scenarios.items():
        base = mean_rows(baseline_rows(scenario, list(scenario.test_days), cfg, bound=False))
        entry = {"eval_days": list(scenario.test_days),
                 "baselines": {b["policy"].split(" (")[0]: b for b in base if not b["policy"].startswith("random")},
                 "policies": {}}
        for arm, per in arms.items():
            evals = per[name]
            svc = np.array([e["service_ratio"] for e in evals])
            entry["policies"][arm] = {
                "service_ratio_mean": float(svc.mean()), "service_ratio_std": float(svc.std()),
                "rebalanced_mean": float(np.mean([e["rebalanced"] for e in evals])),
                "per_seed": evals}
        results["targets"][name] = entry
    results["train_s"] = {arm: per["train_s"] for arm, per in arms.items()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
    plot(results, curves, out.with_suffix(".png"))
    print(table(results))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


def arm_label(arm: str, target: str) -> str:
    if arm == "distribution":
        return "sampled cities (zero-shot)"
    trained_on = arm.split(":", 1)[1]
    return "trained here" if trained_on == target else f"trained on {trained_on.split('-citibike')[0]}"


def table(results) -> str:
    lines = ["| evaluated on | policy | fulfilled service ratio | bikes rebalanced |", "|---|---|---|---|"]
    for name, entry in results["targets"].items():
        for arm, r in entry["policies"].items():
            lines.append(f"| {name} | IPPO, {arm_label(arm, name)} | {r['service_ratio_mean']:.4f} ± "
                         f"{r['service_ratio_std']:.4f} | {r['rebalanced_mean']:,.0f} |")
        for policy, b in entry["baselines"].items():
            lines.append(f"| {name} | {policy} | {b['service_ratio']:.4f} | {b['rebalanced']:,.0f} |")
    return "\n".join(lines)


def plot(results, curves, path):
    from jaxmob.plots import plt

    targets = list(results["targets"])
    fig, axes = plt.subplots(1, len(targets) + 1, figsize=(5 * (len(targets) + 1), 4.2), constrained_layout=True)
    for ax, name in zip(axes, targets):
        entry = results["targets"][name]
        labels = [arm_label(a, name) for a in entry["policies"]] + list(entry["baselines"])
        vals = [r["service_ratio_mean"] for r in entry["policies"].values()] + \
               [b["service_ratio"] for b in entry["baselines"].values()]
        errs = [r["service_ratio_std"] for r in entry["policies"].values()] + [0.0] * len(entry["baselines"])
        ax.bar(labels, vals, yerr=errs, color=[f"C{i}" for i in range(len(labels))], capsize=4)
        ax.set_ylim(max(0.0, min(vals) - 0.03), 1.0)
        ax.set_title(f"{name}: held-out days")
        ax.set_ylabel("fulfilled service ratio")
        ax.tick_params(axis="x", rotation=30)
    ax = axes[-1]
    for i, (arm, runs) in enumerate(curves.items()):
        y = np.asarray(runs)
        x = np.arange(1, y.shape[1] + 1)
        label = "sampled cities" if arm == "distribution" else arm.split(":", 1)[1]
        ax.plot(x, y.mean(0), color=f"C{i}", label=label)
        ax.fill_between(x, y.mean(0) - y.std(0), y.mean(0) + y.std(0), color=f"C{i}", alpha=0.2)
    ax.set_xlabel("update")
    ax.set_ylabel("training service ratio")
    ax.set_title("training")
    ax.legend()
    fig.suptitle(f"IPPO trained on a city distribution vs on the real city: {results['seeds']} seeds, "
                 f"{results['env_steps_per_run']:,} city-steps per run")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
