"""After training: the learned policy against no-op, greedy and the bound on the
held-out replay days, as a table and a learning-curve PNG."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .evaluate import COLUMNS, evaluate_day, format_table
from .plots import plot_learning_curve
from .train import read_metrics


def baseline_rows(scenario, days, config, *, bound: bool = True) -> dict:
    """Per day: evaluate_day rows (no-op, random, greedy, bound) with the training env settings.
    `days`: dates of the scenario, or a mapping date -> DayTrips (a day from a user's file)."""
    trips = days if isinstance(days, dict) else {d: scenario.day(d) for d in days}
    return {d: evaluate_day(scenario.city, t, seed=config.seed, horizon=config.horizon,
                            move_amounts=config.move_amounts, alpha=config.alpha, beta=config.beta, bound=bound)
            for d, t in trips.items()}


def mean_rows(rows_by_day: dict) -> list[dict]:
    """Average each policy's numeric columns over days (rows matched by position)."""
    days = list(rows_by_day)
    out = []
    for i, first in enumerate(rows_by_day[days[0]]):
        row = {"policy": first["policy"]}
        for c in COLUMNS[1:]:
            row[c] = float(np.mean([rows_by_day[d][i][c] for d in days]))
        for k in ("lp_variables", "lp_constraints", "solve_seconds"):
            if k in first:
                row[k] = first[k]
        out.append(row)
    return out


def learned_rows(evaluation: dict, name: str) -> dict:
    """{day: [argmax row, sampled row]} from a `make_evaluator(..., episodes>0)` result.
    The sampled row holds per-column means and `<column>_std` over its episodes."""
    out = {}
    for d, m in evaluation["per_day"].items():
        rows = [{"policy": f"{name} (argmax)", **{c: m[c] for c in COLUMNS[1:]}}]
        if "sampled" in evaluation:
            s = evaluation["sampled"]["per_day"][d]
            n = evaluation["sampled"]["episodes_per_day"]
            rows.append({"policy": f"{name} (sampled, {n} episodes)", **{c: s[c]["mean"] for c in COLUMNS[1:]},
                         **{f"{c}_std": s[c]["std"] for c in COLUMNS[1:]}})
        out[d] = rows
    return out


def comparison(scenario, days, config, evaluation: dict, name: str, *, bound: bool = True) -> dict:
    """Learned rows then baselines per day, their means over days, and the gaps
    that matter: learned argmax and sampled minus greedy, and bound minus learned."""
    per_day = baseline_rows(scenario, days, config, bound=bound)
    learned = learned_rows(evaluation, name)
    for d in per_day:
        per_day[d] = learned[d] + per_day[d]
    mean = mean_rows(per_day)
    if "sampled" in evaluation:  # the std of the mean row pools every episode of every day
        for c in COLUMNS[1:]:
            mean[1][f"{c}_std"] = evaluation["sampled"]["mean"][c]["std"]
    svc = {r["policy"]: r["service_ratio"] for r in mean}
    greedy = next(v for k, v in svc.items() if k.startswith("greedy"))
    gaps = {"argmax_minus_greedy": mean[0]["service_ratio"] - greedy}
    if "sampled" in evaluation:
        gaps["sampled_minus_greedy"] = mean[1]["service_ratio"] - greedy
    if bound:
        b = next(v for k, v in svc.items() if k.startswith("bound"))
        gaps["bound_minus_argmax"] = b - mean[0]["service_ratio"]
        if "sampled" in evaluation:
            gaps["bound_minus_sampled"] = b - mean[1]["service_ratio"]
    return {"days": list(per_day), "per_day": per_day, "mean": mean, "gaps": gaps}


def evaluate_run(run_dir, *, day: str | None = None, trips=None, stations=None, checkpoint: str = "best",
                 episodes: int | None = None, bound: bool = True) -> dict:
    """A trained run's checkpoint against no-op, greedy and the bound: on the
    scenario's test days, on bundled `day`, or on every day of a user's Citi Bike
    file `trips` (any official header era), mapped by the scenario's station map."""
    import jax
    import orbax.checkpoint as ocp

    from .city import load
    from .city.stations import map_day_file
    from .config import TrainConfig
    from .train import build, hyper_of, make_evaluator, restore

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise FileNotFoundError(f"{run_dir} holds no config.json: not a jaxmob training run folder")
    raw = json.loads((run_dir / "config.json").read_text())
    config = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    scenario = load(config.scenario)
    report = None
    if trips is not None:
        if scenario.station_map is None:
            raise ValueError(f"scenario {config.scenario} has no station map: it cannot read a trip file")
        days, report = map_day_file(scenario.station_map, trips, stations_file=stations,
                                    days=[day] if day else None)
    else:
        days = {d: scenario.day(d) for d in ([day] if day else scenario.test_days)}
    parts = build(config, scenario)
    manager = ocp.CheckpointManager((run_dir / "checkpoints" / checkpoint).resolve())
    step = manager.best_step() if checkpoint == "best" else manager.latest_step()
    if step is None:
        raise FileNotFoundError(f"{run_dir}/checkpoints/{checkpoint} holds no checkpoint")
    like = jax.jit(parts["init"])(jax.random.PRNGKey(config.seed), hyper_of(config))
    runner = restore(manager, like, step)
    day_params = {d: parts["eval_env"].make_params(scenario.city, days=[t], alpha=config.alpha, beta=config.beta)
                  for d, t in days.items()}
    evaluator = make_evaluator(parts["policy"], parts["eval_env"], day_params, episodes=episodes or config.eval_episodes)
    result = evaluator(runner.params, runner.groups, jax.random.PRNGKey(20_000 + config.seed))
    table = comparison(scenario, days, config, result, config.alg, bound=bound)
    return {**table, "run_dir": str(run_dir), "checkpoint": checkpoint, "checkpoint_update": int(step),
            "scenario": config.scenario, "mapping": report}


def format_comparison(table: dict) -> str:
    """Per-day tables, the mean table and the gaps, as text."""
    out = []
    for d in table["days"]:
        out += [f"-- day {d}", format_table(table["per_day"][d])]
    out += [f"-- mean over {len(table['days'])} days", format_table(table["mean"])]
    out.append("gaps (service ratio): " + ", ".join(f"{k.replace('_', ' ')} {v:+.4f}" for k, v in table["gaps"].items()))
    return "\n".join(out)


def training_report(result: dict, *, bound: bool = True) -> str:
    """The best-on-validation checkpoint vs baselines on the test days, per day and
    on average; writes `report.json` and `learning_curve.png` into the run folder."""
    config_d = result["config"]
    parts = result["parts"]
    scenario = parts["scenario"]
    from .config import TrainConfig

    config = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config_d.items()})
    days = list(parts["test_params"])
    table = comparison(scenario, days, config, result["test"], config.alg, bound=bound)
    run_dir = Path(result["run_dir"])
    (run_dir / "report.json").write_text(json.dumps({**table, "checkpoint_update": result["test_checkpoint_update"],
                                                     "validation_days": result["validation_days"]}, indent=1))
    evals = [json.loads(l) for l in (run_dir / "eval.jsonl").read_text().splitlines() if l.strip()]
    baselines = {r["policy"]: r["service_ratio"] for r in table["mean"][2:] if not r["policy"].startswith("random")}
    chosen = (result["test_checkpoint_update"], table["mean"][0]["service_ratio"], "chosen checkpoint on test days (argmax)")
    png = plot_learning_curve(read_metrics(run_dir), run_dir / "learning_curve.png", evals=evals,
                              baselines={f"{k} (test days)": v for k, v in baselines.items()},
                              train_label=f"training ({config.train_mode} demand)", final=chosen,
                              title=f"{config.alg} on {config.scenario}")
    header = (f"{config.alg} on {config.scenario}: checkpoint of update {result['test_checkpoint_update']} "
              f"(best on validation days {', '.join(result['validation_days'])}) on test days {', '.join(days)}")
    written = [png, run_dir / "report.json"]
    groups_log = run_dir / "groups.jsonl"
    if groups_log.exists():
        from .plots import plot_group_evolution

        snaps = [json.loads(l) for l in groups_log.read_text().splitlines() if l.strip()]
        written.append(plot_group_evolution(scenario.city, snaps, read_metrics(run_dir), run_dir / "groups.png"))
    return f"{header}\n{format_comparison(table)}\nwrote {', '.join(map(str, written))}"
