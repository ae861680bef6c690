"""The rebalancing environment as a plug-in of the generic trainer (`jaxmob.core.task`).

Training sees only a scenario's training days: their estimated rates
(`train_mode='poisson'`, scaled by `demand_scale`), the same with each episode
at the demand level of a random training day (`'levels'`; the rates alone
where a scenario has no training days), or their real trips (`'replay'`).
Validation days choose the checkpoint; test days are only reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.task import Built, Task, option

TRAIN_MODES = ("poisson", "levels", "replay")



@dataclass(frozen=True)
class RebalanceOptions:
    """The rebalancing environment's own options (`--env rebalance`)."""

    train_mode: str = option("levels", "training demand: poisson (the estimated rates) | levels (Poisson, each episode at the demand level of a random training day; the rates alone where a scenario has no training days) | replay (the training days' real trips)")
    demand_scale: float = option(1.0, "multiplies the Poisson demand rates (train_mode poisson or levels)")
    horizon: int = option(144, "steps per episode (144 x 10 min = one day)")
    move_amounts: tuple = option((5, 10), "bikes per relocation action level, comma separated")
    alpha: float = option(0.5, "reward weight of unserved demand")
    beta: float = option(0.1, "reward weight (cost) per relocated bike")
    reward_sharing: str = option("team", "learning reward: team (mean over all agents: cooperative) | neighbors (mean over self and grid neighbours) | own")
    move_credit: float = option(1.0, "weight of each agent's own-move credit in its learning reward: the trips its move is expected to save over the next credit_window steps, valued as reward, minus its relocation cost (0: team reward alone)")
    credit_window: int = option(6, "steps ahead over which move credit counts expected shortfall (6 = one hour)")
    credit_model: str = option("poisson", "trips a region loses in move credit: mean (expected shortfall) | poisson (its expectation under Poisson departures)")
    credit_level: bool = option(False, "move credit scales its expected departures by today's demand level so far (as MPC does)")
    obs_level: bool = option(True, "agents (and the central critic) also see today's demand level so far: departures requested over those the rates expect (what MPC plans with); on by default since it scored best on manhattan-106's validation days (experiments/fair_controls.py, row hagps_level)")
    obs_lookahead_minutes: int = option(60, "window of the expected-demand-ahead observation, in minutes")


def day_levels(scenario, days) -> np.ndarray:
    """Each day's total trips relative to the estimated daily demand: the spread of
    real demand levels that `train_mode='levels'` draws an episode's level from."""
    return np.array([scenario.day(d).num_trips for d in days], np.float64) / float(scenario.city.trips_per_day)


class RebalanceTask(Task):
    raw_data = "citibike-nyc"
    user_file = "trips"
    name = "rebalance"
    headline = "service_ratio"
    Options = RebalanceOptions
    shaping_names = ("move_credit",)
    default_scenario = "manhattan-106"
    columns = ("service_ratio", "served", "demand", "rebalanced", "relocation_cost", "overflow")
    headers = ("fulfilled ratio", "served", "demand", "bikes rebalanced", "relocation cost", "overflow")

    def scenarios(self) -> list:
        from .city import available

        return available()

    def load(self, name: str):
        from .city import load

        return load(name)

    def show(self, scenario, path):
        from .plots import plot_city

        return plot_city(scenario.city, path)

    def scenario_arguments(self, parser) -> None:
        parser.add_argument("names", nargs="*", help="scenario names (default: all real ones)")

    def write_scenarios(self, args, data, out) -> tuple:
        from .city.scenarios import write_bundled

        return write_bundled(data, Path(out), args.names or None), {}

    def eval_arguments(self, parser) -> tuple:
        parser.add_argument("--stations", metavar="FILE", help="with --trips: station file for trip files that carry "
                            "only ids (default: the scenario's own stations)")
        return ("stations",)

    def validate(self, config) -> None:
        from .env import CREDIT_MODELS, REWARD_SHARING

        o = config.options
        check = lambda ok, name, msg: None if ok else (_ for _ in ()).throw(ValueError(f"{name}: {msg}"))
        check(o.horizon >= 1, "horizon", f"must be >= 1, got {o.horizon}")
        check(o.horizon % config.rollout_steps == 0, "rollout_steps",
              f"must divide the horizon ({o.horizon}), got {config.rollout_steps}")
        for name in ("alpha", "beta"):
            check(getattr(o, name) >= 0, name, f"must be >= 0, got {getattr(o, name)}")
        check(o.reward_sharing in REWARD_SHARING, "reward_sharing",
              f"must be one of {', '.join(REWARD_SHARING)}, got {o.reward_sharing!r}")
        check(o.train_mode in TRAIN_MODES, "train_mode", f"must be one of {', '.join(TRAIN_MODES)}, got {o.train_mode!r}")
        check(o.demand_scale > 0, "demand_scale", f"must be positive, got {o.demand_scale}")
        check(o.move_credit >= 0, "move_credit", f"must be >= 0, got {o.move_credit}")
        check(o.credit_window >= 1, "credit_window", f"must be >= 1, got {o.credit_window}")
        check(o.obs_lookahead_minutes >= 1, "obs_lookahead_minutes", f"must be >= 1, got {o.obs_lookahead_minutes}")
        check(o.credit_model in CREDIT_MODELS, "credit_model",
              f"must be one of {', '.join(CREDIT_MODELS)}, got {o.credit_model!r}")
        check(len(o.move_amounts) >= 1 and all(m >= 1 for m in o.move_amounts), "move_amounts",
              f"needs positive amounts, got {o.move_amounts}")

    def build(self, config, scenario) -> Built:
        from .env import RebalanceConfig, RebalanceEnv, RebalanceShaping

        o, city = config.options, scenario.city
        env_kw = dict(horizon=o.horizon, move_amounts=tuple(o.move_amounts), obs_level=o.obs_level,
                      obs_lookahead_minutes=o.obs_lookahead_minutes)
        validation = tuple(config.validation_days) or tuple(scenario.validation_days) or tuple(scenario.test_days)
        test = tuple(config.test_days) or tuple(scenario.test_days)
        training = [d for d in scenario.days if d not in set(validation) | set(test)]
        if not training and o.train_mode == "replay":
            raise ValueError(f"train_mode {o.train_mode!r} needs training days; {city.name} has none left "
                             f"after validation {validation} and test {test}")
        shaping = RebalanceShaping(o.reward_sharing, o.credit_window, o.credit_model, o.credit_level)
        env = RebalanceEnv(RebalanceConfig(mode="replay" if o.train_mode == "replay" else "poisson", **env_kw), shaping)
        weights = dict(alpha=o.alpha, beta=o.beta)
        if o.train_mode == "replay":
            env_params = env.make_params(city, days=[scenario.day(d) for d in training], **weights)
        else:  # levels without training days (a synthetic scenario): the estimated rates alone
            levels = day_levels(scenario, training) if o.train_mode == "levels" and training else None
            env_params = env.make_params(city, demand_scale=o.demand_scale, demand_levels=levels, **weights)
        eval_env = RebalanceEnv(RebalanceConfig(mode="replay", **env_kw), shaping)
        day_params = lambda episodes: {d: eval_env.make_params(city, days=[t], **weights) for d, t in episodes.items()}
        return Built(scenario=scenario, env=env, env_params=env_params, eval_env=eval_env,
                     validation=day_params(self.episodes(scenario, validation)),
                     test=day_params(self.episodes(scenario, test)), training_days=tuple(training),
                     day_params=day_params)

    def episodes(self, scenario, names) -> dict:
        return {d: scenario.day(d) for d in names}

    def read_episodes(self, scenario, path, *, day=None, stations=None, **extra):
        """({date: DayTrips}, mapping report) of a user's Citi Bike file (any official header era),
        mapped onto the scenario's regions by its station map (unknown stations: counted drops)."""
        from .city.stations import map_day_file

        if scenario.station_map is None:
            raise ValueError(f"scenario {scenario.city.name} has no station map: it cannot read a trip file")
        days, m = map_day_file(scenario.station_map, path, stations_file=stations, days=[day] if day else None)
        return days, (f"mapped {m['mapped']:,} of {m['trips']:,} trips; dropped {m['outside_regions']:,} at stations "
                      f"outside the regions, {m['trips_over_24h']:,} over 24 h; loader: {m['load_report']}")

    def baseline_rows(self, scenario, episodes: dict, config, *, bound: bool = True) -> dict:
        """No-op, random, greedy and (with `bound`) MPC and the clairvoyant LP bound per day.
        Days are evaluated in threads, one per core: HiGHS and XLA release the GIL, and the two
        LPs are most of the time."""
        import os
        from concurrent.futures import ThreadPoolExecutor

        from .evaluate import evaluate_day

        o = config.options
        day = lambda t: evaluate_day(scenario.city, t, seed=config.seed, horizon=o.horizon, move_amounts=o.move_amounts,
                                     alpha=o.alpha, beta=o.beta, bound=bound)
        with ThreadPoolExecutor(max_workers=max(1, min(len(episodes), os.cpu_count() or 1))) as pool:
            return dict(zip(episodes, pool.map(day, episodes.values())))

    def format_table(self, rows: list) -> str:
        from .evaluate import format_table

        return format_table(rows)

    def training_label(self, config) -> str:
        return f"training ({config.options.train_mode} demand)"

    def film(self, built, config, episode, policy, seed: int = 0, scenario=None):
        from .film import film

        return film(built, episode, policy, seed)

    def group_map(self, scenario, snapshots: list, metrics: list, path):
        from .plots import plot_group_evolution

        return plot_group_evolution(scenario.city, snapshots, metrics, path)


TASK = RebalanceTask()
