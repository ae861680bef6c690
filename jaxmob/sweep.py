"""Sweeps as one program: seeds x hyperparameters vmapped through the fused trainer.

Only traced hyperparameters (`sweepable`: the learner core's, such as lr, gamma
and PPO's clip_eps or the off-policy core's tau; the algorithm's traced options,
such as HAG-PS's split/merge thresholds; the environment's reward-shaping
coefficients, such as the rebalance env's move_credit) can be swept this way;
shape-changing ones (network size, number of envs) need separate runs.
"""
from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .config import TrainConfig
from .train import _jsonable_config, build, hyper_of, make_evaluator, validation_scorer

def sweepable(config: TrainConfig) -> tuple:
    """The traced hyperparameters of a run: its learner core's, its algorithm's traced
    options and the environment's shaping coefficients."""
    alg = config.algorithm
    return tuple(alg.core.traced) + tuple(alg.traced) + tuple(config.task.shaping_names)


def grid_runs(config: TrainConfig, seeds: int, grid: dict) -> list[dict]:
    """Every (setting, seed) pair as a dict of hyperparameters plus the seed."""
    names = sweepable(config)
    for k in grid:
        if k not in names:
            raise ValueError(f"cannot sweep {k!r} of {config.alg} in one program; sweepable: {', '.join(names)}")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    names = sorted(grid)
    runs = []
    for values in itertools.product(*(grid[n] for n in names)):
        setting = dict(zip(names, values))
        for s in range(seeds):
            runs.append({"setting": setting, "seed": config.seed + s})
    return runs


def run_sweep(config: TrainConfig, seeds: int, grid: dict, *, out_dir: str | None = None, progress: bool = True,
              validation_curve: bool = False, resume: bool = False, max_chunks: int | None = None) -> dict:
    """Train all runs as one vmapped program; write results.json, results.md and curves.png.
    With `validation_curve`, every run is also scored on the validation days after each chunk
    (the deployed policy's headline): the curve that shows whether training has converged. Each
    run's best-scoring parameters are kept as well (the checkpoint `train` deploys), and the test
    days score them beside the final ones: a learner whose curve dips at its last chunk is not
    judged by the dip alone.

    After every chunk the vmapped state and the curves so far are saved in
    `<out_dir>/checkpoint`; with `resume`, a sweep of the same config, seeds and grid goes on
    from there and ends as the uninterrupted sweep would (a long table survives a killed
    session); a finished sweep removes its checkpoint once its results are written.
    `max_chunks` stops early, leaving the checkpoint (returns None)."""
    import orbax.checkpoint as ocp
    from tqdm.auto import tqdm

    config = config.validate()
    runs = grid_runs(config, seeds, grid)
    parts = build(config)
    hypers = [hyper_of(replace(config, **r["setting"])) for r in runs]
    hyper = jax.tree.map(lambda *xs: jnp.stack(xs), *hypers)
    keys = jnp.stack([jax.random.PRNGKey(r["seed"]) for r in runs])
    init = jax.jit(jax.vmap(parts["init"]))
    chunk = jax.jit(jax.vmap(parts["update_chunk"], in_axes=(0, None)), static_argnums=1)
    runner = init(keys, hyper)
    # validation days rank the settings; test days (argmax and sampled) are reported, never used to choose
    headline = parts["task"].headline
    evaluate, deployed = validation_scorer(parts, config)  # validation scores the policy that is deployed
    eval_key = jax.random.PRNGKey(10_000 + config.seed)
    member = lambda tree, i: jax.tree.map(lambda x: x[i], tree)  # noqa: E731
    out = Path(out_dir or f"runs/sweep-{config.alg}-{config.scenario}")
    identity = {"config": _jsonable_config(config), "seeds": seeds,
                "grid": json.loads(json.dumps(grid, default=str)), "validation_curve": validation_curve,
                **({"keeps_best": True} if validation_curve else {})}  # older checkpoints kept no best: not resumed
    if not resume:  # a fresh sweep never continues an older one
        shutil.rmtree(out / "checkpoint", ignore_errors=True)
    saved = ocp.CheckpointManager(out.resolve() / "checkpoint", options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True))
    curves, validation, start = {}, [], 0
    best = {"params": runner.params, "groups": runner.groups} if validation_curve else None
    best_score, best_chunk = [-np.inf] * len(runs), [0] * len(runs)
    if resume and saved.latest_step() is not None:
        step = saved.latest_step()
        restored = saved.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        if restored["identity"] != identity:
            raise ValueError(f"cannot resume the sweep in {out}: its checkpoint is of a different config, seeds or grid, "
                             f"or from a jaxmob that kept no best-on-validation parameters "
                             f"(remove {out / 'checkpoint'} to start afresh)")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, {"state": runner, "best": best})
        items = saved.restore(step, args=ocp.args.Composite(**{k: ocp.args.StandardRestore(v) for k, v in abstract.items()
                                                                 if v is not None}))
        runner, best = items["state"], items.get("best")
        start, validation = restored["chunk"], restored["validation"]
        best_score, best_chunk = restored.get("best_score", best_score), restored.get("best_chunk", best_chunk)
        curves = {k: [np.asarray(v)] for k, v in restored["curves"].items()}
    n_chunks = config.total_updates // config.updates_per_chunk
    stop = n_chunks if max_chunks is None else min(n_chunks, start + max_chunks)
    bar = tqdm(total=config.total_updates, initial=start * config.updates_per_chunk, disable=not progress,
               desc=f"sweep {config.alg} x{len(runs)}", unit="upd")
    for c in range(start, stop):
        runner, m = chunk(runner, config.updates_per_chunk)
        m = jax.device_get(m)
        for k, v in m.items():
            curves.setdefault(k, []).append(np.asarray(v))  # (N, chunk)
        if validation_curve:
            validation.append([deployed(evaluate(member(runner.params, i), member(runner.groups, i), eval_key))
                               for i in range(len(runs))])
            better = np.asarray(validation[-1]) > np.asarray(best_score)  # the first of equal scores stays
            best = keep_better(best, {"params": runner.params, "groups": runner.groups}, better)
            best_score = np.where(better, validation[-1], best_score).tolist()
            best_chunk = np.where(better, c + 1, best_chunk).tolist()
        meta = {"identity": identity, "chunk": c + 1, "validation": np.asarray(validation).tolist(),
                "curves": {k: np.concatenate(v, axis=1).tolist() for k, v in curves.items()},
                **({"best_score": best_score, "best_chunk": best_chunk} if validation_curve else {})}
        state = {"state": runner, **({"best": best} if validation_curve else {})}
        saved.save(c + 1, args=ocp.args.Composite(meta=ocp.args.JsonSave(meta),
                                                  **{k: ocp.args.StandardSave(v) for k, v in state.items()}), force=True)
        bar.update(config.updates_per_chunk)
        bar.set_postfix(train=f"{np.mean(m[headline][:, -1]):.3f}")
    saved.wait_until_finished()
    bar.close()
    if stop < n_chunks:
        return None
    curves = {k: np.concatenate(v, axis=1) for k, v in curves.items()}
    if validation_curve:  # (N, chunks), scored after updates updates_per_chunk, 2 x updates_per_chunk, ...
        curves["validation_" + headline] = np.asarray(validation).T
    test = make_evaluator(parts["policy"], parts["eval_env"], parts["test_params"], episodes=config.eval_episodes)
    evals, tests = [], []
    for i in range(len(runs)):
        p, g = member(runner.params, i), member(runner.groups, i)
        evals.append(evaluate(p, g, eval_key))
        tests.append(test(p, g, jax.random.PRNGKey(20_000 + config.seed)))
    chosen = None
    if validation_curve:  # each run's best-on-validation parameters on the same test episodes
        chosen = {"update": [k * config.updates_per_chunk for k in best_chunk], "validation": best_score,
                  "tests": [test(member(best["params"], i), member(best["groups"], i), jax.random.PRNGKey(20_000 + config.seed))
                            for i in range(len(runs))]}
    rows = summarise(runs, curves, evals, tests, parts["task"].headline)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"config": json.loads(json.dumps(asdict(config))),
                                                  "headline": parts["task"].headline,
                                                  "grid": grid, "seeds": seeds, "rows": rows,
                                                  "validation_days": list(parts["eval_params"]),
                                                  "test_days": list(parts["test_params"]),
                                                  "runs": [{**r, "eval": e, "test": t,
                                                            **({"best": {k: v[i] for k, v in chosen.items()}} if chosen else {})}
                                                           for i, (r, e, t) in enumerate(zip(runs, evals, tests))]},
                                                 indent=1))
    (out / "results.md").write_text(format_rows(rows) + "\n")
    if config.logger == "tensorboard":
        _tensorboard(out / "tb", config, runs, curves, tests)
    plot_curves(runs, curves, out / "curves.png", title=f"{config.alg} on {config.scenario}", headline=parts["task"].headline)
    shutil.rmtree(out / "checkpoint", ignore_errors=True)  # results written: nothing left to resume
    return {"rows": rows, "out_dir": str(out), "curves": curves, "evals": evals, "tests": tests,
            **({"best": chosen, "best_params": best} if chosen else {})}


def keep_better(kept, new, better):
    """Per run (the leading axis), `new` where `better` else `kept`."""
    mask = jnp.asarray(better)
    return jax.tree.map(lambda k, n: jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, k), kept, new)


def _tensorboard(folder: Path, config: TrainConfig, runs, curves: dict, tests) -> None:
    """One TensorBoard run per member (`<setting>-s<seed>`): its training curves by update, its
    validation curve where one was scored, its settings as hyperparameters beside its test metrics."""
    import shutil

    from .tensorboard import TensorBoardLog

    shutil.rmtree(folder, ignore_errors=True)
    every = config.updates_per_chunk
    for i, (run, test) in enumerate(zip(runs, tests)):
        name = f"{_label(run['setting'])}-s{run['seed']}".replace(" ", "")
        log = TensorBoardLog(folder / name, {**asdict(config), **run["setting"], "seed": run["seed"]})
        for k, v in curves.items():
            if k.startswith("validation_"):
                for c, value in enumerate(v[i]):
                    log.validation((c + 1) * every, {k.removeprefix("validation_"): float(value)})
            else:
                for u, value in enumerate(v[i]):
                    log.training(u + 1, {k: float(value)})
        log.close({f"test_{k}": v for k, v in test.items() if isinstance(v, (int, float))})


def _label(setting: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in setting.items()) or "default"


def summarise(runs, curves, evals, tests, headline: str = "service_ratio") -> list[dict]:
    """Mean and std over seeds of each setting's final training, validation and
    test values of the environment's headline metric."""
    groups = {}
    for i, r in enumerate(runs):
        groups.setdefault(_label(r["setting"]), []).append(i)
    rows = []
    for label, idx in groups.items():
        svc = np.array([evals[i][headline] for i in idx])
        test_svc = np.array([tests[i][headline] for i in idx])
        sampled = np.array([tests[i]["sampled"]["mean"][headline]["mean"] for i in idx])
        train_svc = curves[headline][idx, -1]
        rows.append({"setting": label, "seeds": len(idx), "headline": headline,
                     "validation_mean": float(svc.mean()),
                     "validation_std": float(svc.std()), "train_mean": float(train_svc.mean()),
                     "train_std": float(train_svc.std()),
                     "test_mean": float(test_svc.mean()), "test_std": float(test_svc.std()),
                     "test_sampled_mean": float(sampled.mean()),
                     "test_sampled_std": float(sampled.std())})
        if all("sampled" in evals[i] for i in idx):  # the deployed policy is sampled: its validation score
            val_sampled = np.array([evals[i]["sampled"]["mean"][headline]["mean"] for i in idx])
            rows[-1].update(validation_sampled_mean=float(val_sampled.mean()), validation_sampled_std=float(val_sampled.std()))
    return rows


def format_rows(rows) -> str:
    """The sweep's table; where the env deploys the sampled policy, its validation score (the one to
    choose a setting by) stands beside the argmax one."""
    name = (rows[0].get("headline", "service_ratio") if rows else "service_ratio").replace("_", " ")
    sampled = bool(rows) and all("validation_sampled_mean" in r for r in rows)
    pm = lambda r, k: f"{r[k + '_mean']:.4f} ± {r[k + '_std']:.4f}"  # noqa: E731
    columns = [("validation", "validation {} (argmax)")] + [("validation_sampled", "validation {} (sampled)")] * sampled \
        + [("test", "test {} (argmax)"), ("test_sampled", "test {} (sampled)"), ("train", "final training {}")]
    lines = ["| setting | seeds | " + " | ".join(h.format(name) for _, h in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['seeds']} | " + " | ".join(pm(r, k) for k, _ in columns) + " |")
    return "\n".join(lines)


def plot_curves(runs, curves, path, title="", headline="service_ratio"):
    """Learning curves, mean ± std over seeds per setting."""
    from .plots import plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    groups = {}
    for i, r in enumerate(runs):
        groups.setdefault(_label(r["setting"]), []).append(i)
    for ax, key, name in zip(axes, ("episode_return", headline), ("episode return per agent", f"{headline.replace('_', ' ')} (training)")):
        for label, idx in groups.items():
            y = curves[key][idx]
            x = np.arange(1, y.shape[1] + 1)
            mu, sd = y.mean(0), y.std(0)
            ax.plot(x, mu, label=label)
            ax.fill_between(x, mu - sd, mu + sd, alpha=0.2)
        ax.set_xlabel("update")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
