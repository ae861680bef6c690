"""The thin Python loop around compiled training chunks.

Each chunk of `updates_per_chunk` PPO updates is one jitted `lax.scan`; between
chunks this loop logs metrics (JSONL), shows progress, evaluates on held-out
replay days, guards against NaNs and saves Orbax checkpoints (last N and best).
`resume=True` continues from the latest checkpoint and ends exactly where an
uninterrupted run ends, because a chunk is a pure function of the saved state.
"""
from __future__ import annotations

import functools
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .core.env import action_logits, per_agent, runs_per_distinct_observation
from .config import TrainConfig
from .core.rollout import rollout


class TrainingDiverged(RuntimeError):
    """A loss or parameter became NaN/inf; the last good checkpoint is kept."""


def build(config: TrainConfig, scenario=None) -> dict:
    """Scenario, training env, validation and test envs, policy, PPO functions.

    The environment's Task (`config.task`) turns the config into environments:
    what training sees, and the validation episodes that choose the checkpoint
    and the test episodes that are only reported."""
    task = config.task
    scenario = scenario if scenario is not None else task.load(config.scenario)
    built = task.build(config, scenario)
    env, env_params = built.env, built.env_params
    alg = config.algorithm
    policy = alg.make_policy(env, env_params, config)
    init, update_chunk = alg.core.make_train(env, env_params, policy, config)
    return dict(task=task, scenario=scenario, built=built, env=env, env_params=env_params, eval_env=built.eval_env,
                eval_params=built.validation, test_params=built.test, day_params=built.day_params,
                training_days=tuple(built.training_days), policy=policy, init=init, update_chunk=update_chunk)


def hyper_of(config: TrainConfig):
    """The traced hyperparameters of a config: its learner core's, the algorithm's
    traced options (HAG-PS's thresholds) and the environment's shaping coefficients."""
    alg = config.algorithm
    return alg.core.hyper(config, config.task.shaping(config.options), alg.traced_values(config.alg_options))


def learned_policy(policy, params, groups, sample: bool = False):
    """The learned policy as a baseline-style policy `(key, state, env_params, env) -> actions`,
    acting by argmax over valid actions (deterministic) or, with `sample`, by
    drawing from its action distribution (the policy PPO trained). A policy with
    its own `act` (the deterministic-policy-gradient core) decides for itself."""
    def act(key, state, env_params, env):
        if hasattr(policy, "act"):
            return policy.act(params, groups, env.observe(state, env_params), env.global_state(state, env_params),
                              key, sample)
        distinct = runs_per_distinct_observation(policy, env)
        obs, index = env.distinct_observations(state, env_params) if distinct else (env.observe(state, env_params), None)
        logits, _ = per_agent(policy, params, groups, obs, env.global_state(state, env_params), index)
        agents = env.agents(env_params)
        masked = action_logits(logits, agents.action_mask, agents.logit_prior)
        chosen = jax.random.categorical(key, masked, axis=-1) if sample else jnp.argmax(masked, axis=-1)
        return chosen.astype(jnp.int32)
    return act


def _episode_runners(policy, eval_env):
    """Jitted (argmax, sampled) episode runners of a policy on an env."""

    @jax.jit
    def run(params, groups, day_params, key):
        return rollout(learned_policy(policy, params, groups), eval_env, day_params, key)

    @jax.jit
    def run_sampled(params, groups, day_params, keys):
        return jax.vmap(lambda k: rollout(learned_policy(policy, params, groups, sample=True), eval_env,
                                          day_params, k))(keys)

    return run, run_sampled


_cached_runners = functools.lru_cache(maxsize=8)(_episode_runners)


def make_evaluator(policy, eval_env, eval_params: dict, episodes: int = 0):
    """Evaluation on each episode in `eval_params` (compiled once per shape, and
    shared by the evaluators of one policy and env: validation and test days
    reuse the compiled episode): the argmax policy, and with `episodes` > 0 also
    the sampled policy over that many episodes (`out['sampled']`: per-episode
    and overall mean and std)."""
    try:
        run, run_sampled = _cached_runners(policy, eval_env)
    except TypeError:  # an unhashable policy or env: compile for this evaluator alone
        run, run_sampled = _episode_runners(policy, eval_env)

    def evaluate(params, groups, key) -> dict:
        per_day = {d: {k: float(v) for k, v in jax.device_get(run(params, groups, p, key)).items()}
                   for d, p in eval_params.items()}
        out = {k: float(np.mean([m[k] for m in per_day.values()])) for k in next(iter(per_day.values()))}
        out["per_day"] = per_day
        if episodes:
            keys = jax.random.split(jax.random.fold_in(key, 1), episodes)
            runs = {d: jax.device_get(run_sampled(params, groups, p, keys)) for d, p in eval_params.items()}
            out["sampled"] = sampled_summary(runs)
        return out

    return evaluate


def validation_scorer(parts: dict, config) -> tuple:
    """(evaluate on the validation days, score of its result): the score is the headline of the
    policy the environment deploys, argmax or sampled (mean over episodes)."""
    headline = parts["task"].headline
    sampled = parts["task"].deployed == "sampled"
    evaluate = make_evaluator(parts["policy"], parts["eval_env"], parts["eval_params"],
                              episodes=config.eval_episodes if sampled else 0)
    score = (lambda m: m["sampled"]["mean"][headline]["mean"]) if sampled else (lambda m: m[headline])
    return evaluate, score


def sampled_summary(runs: dict) -> dict:
    """{day: metric arrays over episodes} -> per-day mean/std and the mean over days
    (its std: over every episode of every day)."""
    per_day = {d: {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in m.items()}
               for d, m in runs.items()}
    keys = next(iter(runs.values())).keys()
    pooled = {k: np.concatenate([np.asarray(m[k], np.float64).ravel() for m in runs.values()]) for k in keys}
    mean = {k: {"mean": float(np.mean([per_day[d][k]["mean"] for d in runs])), "std": float(np.std(v))}
            for k, v in pooled.items()}
    return {"per_day": per_day, "mean": mean, "episodes_per_day": int(len(next(iter(pooled.values()))) // len(runs))}


def _finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree.leaves(tree)
               if np.issubdtype(np.asarray(x).dtype, np.floating))


def train(config: TrainConfig, *, resume: bool = False, max_chunks: int | None = None, log=print,
          scenario=None) -> dict:
    """Run (or resume) training; returns the summary written to `<run_dir>/summary.json`.

    `scenario` overrides loading `config.scenario` by name (tests, notebooks);
    `max_chunks` stops early (the run can be resumed)."""
    import orbax.checkpoint as ocp
    from tqdm.auto import tqdm

    config = config.validate(known_scenario=scenario is None)
    run_dir = Path(config.run_dir).resolve()
    parts = build(config, scenario)  # before anything is written: a config that cannot build leaves no folder
    run_dir.mkdir(parents=True, exist_ok=True)
    policy = parts["policy"]
    init = jax.jit(parts["init"])
    chunk_fn = jax.jit(parts["update_chunk"], static_argnums=1)
    headline = parts["task"].headline
    evaluate, score = validation_scorer(parts, config)
    eval_key = jax.random.PRNGKey(10_000 + config.seed)

    if not resume:  # a fresh run never inherits an older run's checkpoints (its "best" would win)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    last = ocp.CheckpointManager(run_dir / "checkpoints" / "last",
                                 options=ocp.CheckpointManagerOptions(max_to_keep=config.keep_last, create=True))
    best = ocp.CheckpointManager(run_dir / "checkpoints" / "best",
                                 options=ocp.CheckpointManagerOptions(max_to_keep=1, best_fn=lambda m: m[headline],
                                                                      best_mode="max", create=True))
    runner = init(jax.random.PRNGKey(config.seed), hyper_of(config))
    n_chunks = config.total_updates // config.updates_per_chunk
    start_chunk, best_eval = 0, -np.inf
    metrics_path = run_dir / "metrics.jsonl"
    if resume and last.latest_step() is not None:
        step = last.latest_step()
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, runner)
        restored = last.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                              meta=ocp.args.JsonRestore()))
        runner, meta = restored["state"], restored["meta"]
        if meta["config"] != _jsonable_config(config):
            raise ValueError(f"cannot resume {run_dir}: the checkpoint was written with a different configuration")
        start_chunk, best_eval = meta["chunk"], meta["best_eval"]
        _truncate_jsonl(metrics_path, step)
        _truncate_jsonl(run_dir / "eval.jsonl", step)
        _truncate_jsonl(run_dir / "groups.jsonl", step)
        log(f"resumed from update {step} (chunk {start_chunk}/{n_chunks})")
    else:
        for stale in ("metrics.jsonl", "eval.jsonl", "groups.jsonl"):
            (run_dir / stale).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tb", ignore_errors=True)
    tb = None
    if config.logger == "tensorboard":
        from .tensorboard import TensorBoardLog

        tb = TensorBoardLog(run_dir / "tb", _jsonable_config(config), resume_from=last.latest_step() if start_chunk else None)

    (run_dir / "config.json").write_text(json.dumps(_jsonable_config(config), indent=1))
    bar = tqdm(total=config.total_updates, initial=start_chunk * config.updates_per_chunk, disable=not config.progress,
               desc=f"{config.alg}", unit="upd", dynamic_ncols=True)
    agent_steps_per_update = config.num_envs * config.rollout_steps * int(np.sum(parts["env"].agents(parts["env_params"]).mask))
    eval_metrics = None
    t_start = time.perf_counter()
    for c in range(start_chunk, n_chunks if max_chunks is None else min(n_chunks, start_chunk + max_chunks)):
        t0 = time.perf_counter()
        new_runner, m = chunk_fn(runner, config.updates_per_chunk)
        m = jax.device_get(m)
        if not (_finite(m) and _finite(new_runner.params)):
            bad = [k for k, v in m.items() if not np.all(np.isfinite(v))]
            raise TrainingDiverged(
                f"non-finite values after update {int(runner.update)} + chunk {c} (in {', '.join(bad) or 'parameters'}); "
                f"the last good checkpoint (update {last.latest_step()}) in {run_dir / 'checkpoints'} is intact")
        runner = new_runner
        dt = time.perf_counter() - t0
        update = int(runner.update)
        with metrics_path.open("a") as fh:
            for i in range(config.updates_per_chunk):
                row = {k: float(v[i]) for k, v in m.items()}
                row["update"] = update - config.updates_per_chunk + i + 1
                fh.write(json.dumps(row) + "\n")
                if tb is not None:
                    tb.training(row["update"], {k: v for k, v in row.items() if k != "update"})
        if hasattr(runner.groups, "agent_local"):  # HAG-PS: log the assignment for the group map
            g = jax.device_get(runner.groups)
            with (run_dir / "groups.jsonl").open("a") as fh:
                fh.write(json.dumps({"update": update, "local": np.asarray(g.agent_local).tolist(),
                                     "global": np.asarray(g.agent_global).tolist()}) + "\n")
        if config.eval_every and (c + 1) % config.eval_every == 0 or c + 1 == n_chunks:
            eval_metrics = evaluate(runner.params, runner.groups, eval_key)
            with (run_dir / "eval.jsonl").open("a") as fh:
                fh.write(json.dumps({"update": update, **eval_metrics, "selection_score": score(eval_metrics)}) + "\n")
            if tb is not None:
                tb.validation(update, {**eval_metrics, "selection_score": score(eval_metrics)})
        meta = {"chunk": c + 1, "update": update, "config": _jsonable_config(config), "best_eval": best_eval}
        if eval_metrics is not None and score(eval_metrics) > best_eval:
            best_eval = meta["best_eval"] = score(eval_metrics)
            best.save(update, args=ocp.args.Composite(state=ocp.args.StandardSave(runner)),
                      metrics={headline: best_eval}, force=True)
        last.save(update, args=ocp.args.Composite(state=ocp.args.StandardSave(runner), meta=ocp.args.JsonSave(meta)),
                  force=True)
        bar.update(config.updates_per_chunk)
        bar.set_postfix(ret=f"{m['episode_return'][-1]:.1f}", train=f"{m[headline][-1]:.3f}",
                        eval=f"{score(eval_metrics):.3f}" if eval_metrics else "-",
                        asps=f"{agent_steps_per_update * config.updates_per_chunk / dt:,.0f}")
    last.wait_until_finished()
    best.wait_until_finished()
    bar.close()
    summary = {"config": _jsonable_config(config), "updates": int(runner.update), "wall_s": time.perf_counter() - t_start,
               "final_eval": eval_metrics, "headline": headline, "best_eval": best_eval, "run_dir": str(run_dir),
               "selection": parts["task"].deployed, "validation_days": list(parts["eval_params"]), "test_days": list(parts["test_params"]),
               "training_days": list(parts["training_days"]), "env": config.env}
    test = None
    if int(runner.update) == config.total_updates:  # finished: the best-on-validation checkpoint meets the test days
        chosen = restore(best, runner, best.best_step()) if best.best_step() is not None else runner
        summary["test_checkpoint_update"] = int(chosen.update)
        test_eval = make_evaluator(policy, parts["eval_env"], parts["test_params"], episodes=config.eval_episodes)
        test = test_eval(chosen.params, chosen.groups, jax.random.PRNGKey(20_000 + config.seed))
        summary["test"] = test
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    if tb is not None:
        tb.close({f"test_{k}": v for k, v in (test or {}).items() if isinstance(v, (int, float))})
    return {**summary, "runner": runner, "parts": parts}


def finished_run(config: TrainConfig) -> dict | None:
    """The summary of a finished run of exactly this configuration in its run folder, if any
    (experiment scripts skip such runs, so an interrupted table resumes where it stopped)."""
    path = Path(config.run_dir) / "summary.json"
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    return summary if summary.get("config") == _jsonable_config(config) and "test" in summary else None


def restore(manager, like, step):
    """The runner state saved at `step` by a checkpoint manager, shaped like `like`."""
    import orbax.checkpoint as ocp

    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]


def _jsonable_config(config: TrainConfig) -> dict:
    """The run's identity (resume and reuse compare it): every field but where the metrics are logged."""
    values = asdict(config)
    values.pop("logger")
    return json.loads(json.dumps(values))


def _truncate_jsonl(path: Path, update: int) -> None:
    """Drop metric rows written after the checkpoint we resume from."""
    if path.exists():
        rows = [l for l in path.read_text().splitlines() if l.strip() and json.loads(l)["update"] <= update]
        path.write_text("".join(r + "\n" for r in rows))


def read_metrics(run_dir) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
