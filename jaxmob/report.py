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
    """Per day: evaluate_day rows (no-op, random, greedy, bound) with the training env settings."""
    return {d: evaluate_day(scenario.city, scenario.day(d), seed=config.seed, horizon=config.horizon,
                            move_amounts=config.move_amounts, alpha=config.alpha, beta=config.beta, bound=bound)
            for d in days}


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


def training_report(result: dict, *, bound: bool = True) -> str:
    """Table of the learned policy vs baselines on the evaluation days; writes
    `report.json` and `learning_curve.png` into the run folder."""
    config_d = result["config"]
    parts = result["parts"]
    scenario = parts["scenario"]
    from .config import TrainConfig

    config = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config_d.items()})
    days = list(parts["eval_params"])
    per_day = baseline_rows(scenario, days, config, bound=bound)
    learned = result["final_eval"]["per_day"]
    name = f"{config.alg} (learned, argmax)"
    for d in days:
        m = learned[d]
        per_day[d].insert(0, {"policy": name, **{c: m[c] for c in COLUMNS[1:]}})
    rows = mean_rows(per_day)
    run_dir = Path(result["run_dir"])
    (run_dir / "report.json").write_text(json.dumps({"days": days, "mean": rows, "per_day": per_day}, indent=1))
    evals = [json.loads(l) for l in (run_dir / "eval.jsonl").read_text().splitlines() if l.strip()]
    baselines = {r["policy"]: r["service_ratio"] for r in rows[1:] if not r["policy"].startswith("random")}
    png = plot_learning_curve(read_metrics(run_dir), run_dir / "learning_curve.png", evals=evals,
                              baselines=baselines, title=f"{config.alg} on {config.scenario}")
    header = f"{config.alg} on {config.scenario}, mean over held-out replay days {', '.join(days)}"
    written = [png, run_dir / "report.json"]
    groups_log = run_dir / "groups.jsonl"
    if groups_log.exists():
        from .plots import plot_group_evolution

        snaps = [json.loads(l) for l in groups_log.read_text().splitlines() if l.strip()]
        written.append(plot_group_evolution(scenario.city, snaps, read_metrics(run_dir), run_dir / "groups.png"))
    return f"{header}\n{format_table(rows)}\nwrote {', '.join(map(str, written))}"
