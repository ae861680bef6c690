"""After training: the learned policy against no-op, greedy and the bound on the
held-out replay days, as a table and a learning-curve PNG."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .plots import plot_learning_curve
from .train import read_metrics

BOUND_POLICY = "bound"  # the clairvoyant bound (rows named "bound ...")
MPC_POLICY = "MPC"  # an optimiser on the forecast (rows named "MPC ..."), where the env has one


def baseline_rows(scenario, days, config, *, bound: bool = True) -> dict:
    """Per episode: the environment's baseline rows (for the rebalance env: no-op,
    random, greedy, bound) with the training env settings. `days`: episode names
    of the scenario, or a mapping name -> episode data (a day from a user's file)."""
    task = config.task
    episodes = days if isinstance(days, dict) else task.episodes(scenario, days)
    return task.baseline_rows(scenario, episodes, config, bound=bound)


def mean_rows(rows_by_day: dict, columns=None) -> list[dict]:
    """Average each policy's numeric columns over days (rows matched by position); a column a
    row does not have (a bound's reward) is NaN."""
    days = list(rows_by_day)
    first_rows = rows_by_day[days[0]]
    columns = columns or [k for k, v in first_rows[0].items() if k != "policy" and isinstance(v, (int, float))]
    out = []
    for i, first in enumerate(first_rows):
        row = {"policy": first["policy"]}
        for c in columns:
            row[c] = float(np.mean([rows_by_day[d][i].get(c, np.nan) for d in days]))
        for k in ("lp_variables", "lp_constraints", "solve_seconds", "planning_seconds", "plans"):
            if k in first:
                row[k] = first[k]
        out.append(row)
    return out


def learned_rows(evaluation: dict, name: str, columns) -> dict:
    """{day: [argmax row, sampled row]} from a `make_evaluator(..., episodes>0)` result.
    The sampled row holds per-column means and `<column>_std` over its episodes."""
    out = {}
    for d, m in evaluation["per_day"].items():
        rows = [{"policy": f"{name} (argmax)", **{c: m[c] for c in columns}}]
        if "sampled" in evaluation:
            s = evaluation["sampled"]["per_day"][d]
            n = evaluation["sampled"]["episodes_per_day"]
            rows.append({"policy": f"{name} (sampled, {n} episodes)", **{c: s[c]["mean"] for c in columns},
                         **{f"{c}_std": s[c]["std"] for c in columns}})
        out[d] = rows
    return out


def comparison(scenario, days, config, evaluation: dict | None, name: str, *, bound: bool = True) -> dict:
    """Learned rows (where `evaluation` is given) then baselines per day, their means
    over days, and the gaps that matter on the headline metric: learned argmax and
    sampled minus the hand rule, and the bound minus learned, where the env has them."""
    task = config.task
    columns, headline = tuple(task.columns), task.headline
    per_day = baseline_rows(scenario, days, config, bound=bound)
    if evaluation is not None:
        learned = learned_rows(evaluation, name, columns)
        for d in per_day:
            per_day[d] = learned[d] + per_day[d]
    mean = mean_rows(per_day, columns)
    gaps = {}
    if evaluation is not None:
        sampled = "sampled" in evaluation
        if sampled:  # the std of the mean row pools every episode of every day
            for c in columns:
                mean[1][f"{c}_std"] = evaluation["sampled"]["mean"][c]["std"]
        value = {r["policy"]: r[headline] for r in mean}
        find = lambda prefix: next((v for k, v in value.items() if k.startswith(prefix)), None)  # noqa: E731
        rule = task.reference_policy  # the hand rule a learned policy must beat (rows named "<rule> ...")
        reference, upper = find(rule), find(BOUND_POLICY) if bound else None
        slug = rule.replace(" ", "_")
        for name, bar in ((slug, reference), (MPC_POLICY, find(MPC_POLICY) if bound else None)):
            if bar is None:
                continue
            for i, kind in enumerate(("argmax", "sampled")[:1 + sampled]):
                gaps[f"{kind}_minus_{name}"] = mean[i][headline] - bar
                gaps[f"worst_day_{kind}_minus_{name}"] = worst_day(per_day, i, name if name == MPC_POLICY else rule,
                                                                   headline, task.higher_is_better)
        if upper is not None:
            gaps["bound_minus_argmax"] = upper - mean[0][headline]
            if sampled:
                gaps["bound_minus_sampled"] = upper - mean[1][headline]
    return {"days": list(per_day), "per_day": per_day, "mean": mean, "gaps": gaps, "headline": headline}


def worst_day(per_day: dict, row: int, prefix: str, headline: str, higher_is_better: bool = True) -> float:
    """The day on which learned row `row` does worst against the row named `prefix`: the
    smallest (learned - it) over days, or (it - learned) where lower is better. A policy
    is better than a rule only when this is positive: it wins on every day."""
    sign = 1.0 if higher_is_better else -1.0
    diffs = [sign * (rows[row][headline] - next(r[headline] for r in rows if r["policy"].startswith(prefix)))
             for rows in per_day.values()]
    return float(min(diffs))


def evaluate_baselines(config, *, day: str | None = None, bound: bool = True, user_file=None, **read_options) -> dict:
    """The environment's baselines and bound on the test episodes of `config`'s scenario,
    on evaluation episode `day`, or on the days of a user's file (`Task.read_episodes`),
    with the config's environment options."""
    task = config.task
    built = task.build(config, task.load(config.scenario))  # the episodes only: no learner is built
    report = None
    if user_file is not None:
        if task.read_episodes is None:
            raise ValueError(f"env {config.env} reads no user file")
        days, report = task.read_episodes(built.scenario, user_file, day=day, **read_options)
    else:
        days = task.episodes(built.scenario, [day] if day else list(built.test))
    table = comparison(built.scenario, days, config, None, config.alg, bound=bound)
    return {**table, "scenario": config.scenario, "env": config.env, "mapping": report}


def run_config(run_dir):
    """The TrainConfig a run folder was trained with."""
    from .config import TrainConfig

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise FileNotFoundError(f"{run_dir} holds no config.json: not a jaxmob training run folder")
    return TrainConfig(**json.loads((run_dir / "config.json").read_text()))


def load_run(run_dir, checkpoint: str = "best", env: str | None = None) -> tuple:
    """(config, parts, runner, update) of a training run folder: its config, its environments
    and learner rebuilt (`train.build`), and the runner restored from its `checkpoint` ("best",
    on validation days, or "last")."""
    import jax
    import orbax.checkpoint as ocp

    from .train import build, hyper_of, restore

    run_dir = Path(run_dir)
    config = run_config(run_dir)
    if env is not None and env != config.env:
        raise ValueError(f"{run_dir} was trained on env {config.env}, not {env}")
    parts = build(config)
    manager = ocp.CheckpointManager((run_dir / "checkpoints" / checkpoint).resolve())
    step = manager.best_step() if checkpoint == "best" else manager.latest_step()
    if step is None:
        raise FileNotFoundError(f"{run_dir}/checkpoints/{checkpoint} holds no checkpoint")
    like = jax.jit(parts["init"])(jax.random.PRNGKey(config.seed), hyper_of(config))
    return config, parts, restore(manager, like, step), int(step)


def evaluate_run(run_dir, *, day: str | None = None, user_file=None, checkpoint: str = "best",
                 episodes: int | None = None, bound: bool = True, env: str | None = None, **read_options) -> dict:
    """A trained run's checkpoint against the environment's baselines and bound:
    on the scenario's test episodes, on evaluation episode `day`, or on the days
    of a user's own file (read by the environment's Task, `Task.read_episodes`:
    for the rebalance env a Citi Bike file of any official header era, mapped
    by the station map; for parking an event file)."""
    import jax

    from .train import make_evaluator

    config, parts, runner, step = load_run(run_dir, checkpoint, env)
    task = config.task
    report = None
    if user_file is not None:
        if task.read_episodes is None:
            raise ValueError(f"env {config.env} reads no user file")
        days, report = task.read_episodes(parts["scenario"], user_file, day=day, **read_options)
    else:
        days = task.episodes(parts["scenario"], [day] if day else list(parts["test_params"]))
    evaluator = make_evaluator(parts["policy"], parts["eval_env"], parts["day_params"](days),
                               episodes=episodes or config.eval_episodes)
    result = evaluator(runner.params, runner.groups, jax.random.PRNGKey(20_000 + config.seed))
    table = comparison(parts["scenario"], days, config, result, config.alg, bound=bound)
    return {**table, "run_dir": str(run_dir), "checkpoint": checkpoint, "checkpoint_update": step,
            "scenario": config.scenario, "env": config.env, "mapping": report}


def format_comparison(table: dict, task) -> str:
    """Per-day tables, the mean table and the gaps, as text."""
    out = []
    for d in table["days"]:
        out += [f"-- day {d}", task.format_table(table["per_day"][d])]
    out += [f"-- mean over {len(table['days'])} days", task.format_table(table["mean"])]
    if table["gaps"]:
        out.append(f"gaps ({table['headline'].replace('_', ' ')}): "
                   + ", ".join(f"{k.replace('_', ' ')} {v:+.4f}" for k, v in table["gaps"].items()))
        verdicts = []
        for k, v in table["gaps"].items():
            if k.startswith("worst_day_"):
                kind, rule = k[len("worst_day_"):].split("_minus_")
                verdicts.append(f"{kind} beats {rule} on every day (worst day {v:+.4f})" if v > 0 else
                                f"{kind} is NOT better than {rule}: it loses or ties on some day (worst day {v:+.4f})")
        if verdicts:
            out.append("verdict: " + "; ".join(verdicts))
    return "\n".join(out)


def training_report(result: dict, *, bound: bool = True) -> str:
    """The best-on-validation checkpoint vs baselines on the test days, per day and
    on average; writes `report.json` and `learning_curve.png` into the run folder."""
    from .config import TrainConfig

    parts = result["parts"]
    scenario = parts["scenario"]
    config = TrainConfig(**result["config"])
    task, headline = config.task, config.task.headline
    days = list(parts["test_params"])
    table = comparison(scenario, days, config, result["test"], config.alg, bound=bound)
    run_dir = Path(result["run_dir"])
    (run_dir / "report.json").write_text(json.dumps({**table, "checkpoint_update": result["test_checkpoint_update"],
                                                     "validation_days": result["validation_days"]}, indent=1))
    evals = [json.loads(l) for l in (run_dir / "eval.jsonl").read_text().splitlines() if l.strip()]
    baselines = {r["policy"]: r[headline] for r in table["mean"][2:] if not r["policy"].startswith("random")}
    chosen = (result["test_checkpoint_update"], table["mean"][0][headline], "chosen checkpoint on test days (argmax)")
    png = plot_learning_curve(read_metrics(run_dir), run_dir / "learning_curve.png", evals=evals,
                              baselines={f"{k} (test days)": v for k, v in baselines.items()},
                              train_label=task.training_label(config), final=chosen, metric=headline,
                              title=f"{config.alg} on {config.scenario}")
    header = (f"{config.alg} on {config.scenario}: checkpoint of update {result['test_checkpoint_update']} "
              f"(best {result.get('selection', 'argmax')} policy on validation days {', '.join(result['validation_days'])}) "
              f"on test days {', '.join(days)}")
    written = [png, run_dir / "report.json"]
    groups_log = run_dir / "groups.jsonl"
    if groups_log.exists():
        snaps = [json.loads(l) for l in groups_log.read_text().splitlines() if l.strip()]
        drawn = task.group_map(scenario, snaps, read_metrics(run_dir), run_dir / "groups.png")
        written += [drawn] if drawn is not None else []
    return f"{header}\n{format_comparison(table, task)}\nwrote {', '.join(map(str, written))}"
