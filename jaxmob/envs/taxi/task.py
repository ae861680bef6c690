"""The taxi environment as a plug-in of the generic trainer (`--env taxi`).

Scenarios (`scenarios.py`): `nyc-hex-synthetic`, the NYC-scale synthetic hex
city of the fleet-size experiments (250 cells, 280k orders a day, built by
code); the AMoD NYC areas `amod-nyc-brooklyn`, `amod-nyc-man-south`,
`amod-nyc-man-middle`, `amod-nyc-man-north` (real aggregated demand, 19:00-22:00,
bundled); and any `.npz` written by `jaxmob scenarios taxi` (a user's TLC
months, whose last days are real replayed test days). Where a scenario has no
real days, its evaluation episodes are seeded Poisson draws from its rates.
Training draws fresh Poisson orders every episode.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...core.task import Built, Task, option



@dataclass(frozen=True)
class TaxiOptions:
    """The taxi environment's own options (`--env taxi`)."""

    num_taxis: int = option(0, "fleet size (0: the scenario's own: 8,000 on nyc-hex-synthetic, the AMoD file's "
                           "fleet on amod-*; the paper: 6000, 8000, 10000)")
    max_wait: int = option(2, "steps an unmatched order waits before it expires")
    reward: str = option("served", "taxi reward: served (1 when the taxi is matched to an order: ORR's own count; the "
                                   "default, best on validation ORR and CI at 3 seeds, experiments/taxi_rewards.py) | "
                                   "the paper's balance indicator: local (its cell's supply-demand balance) | global "
                                   "(mean over cells) | both (their mean)")
    horizon: int = option(0, "steps per episode (0: the scenario's: 144 x 10 min on nyc-hex-synthetic, the 36 x 5 min "
                         "demand window on amod-*)")
    demand_scale: float = option(1.0, "multiplies the order rates of training episodes")


BOUND_MAX_TERMS = 2_000_000  # the exact bound's LP up to this size: every AMoD area (< 30k), not the 250-cell cities (9M)
BOUND_TIME_LIMIT = 1200.0  # seconds per episode's bound LP (about 4 minutes on a day of the 250-cell city)
BOUND_ZONES = 25  # larger cities: trips end anywhere in one of this many destination zones (a looser, valid bound)


class TaxiTask(Task):
    provides = ("tokens",)
    raw_data = "amod-scenarios"
    name = "taxi"
    headline = "order_response_rate"
    Options = TaxiOptions
    default_scenario = "amod-nyc-man-south"
    # taxis in one cell see the same observation: an argmax policy moves them all alike (README)
    deployed = "sampled"
    # PPO over thousands of taxi agents: fewer, shorter rollouts per update than the bike default
    defaults = dict(alg="madarl", num_envs=2, rollout_steps=36, minibatches=4, total_updates=100)
    columns = ("order_response_rate", "pcr", "ci", "empty_km", "orr_x_occupied_share", "served", "orders")
    headers = ("ORR", "PCR ($10k)", "CI", "empty km", "ORR x occupied-km share", "served", "orders")

    def scenarios(self) -> list:
        from .scenarios import bundled

        return ["nyc-hex-synthetic", *bundled()]

    def knows(self, name: str) -> bool:
        return name in self.scenarios() or name.endswith(".npz")

    def load(self, name: str):
        from .scenarios import load

        return load(name)

    @staticmethod
    def fleet(options, scenario) -> int:
        return options.num_taxis or scenario.city.fleet

    @staticmethod
    def horizon(options, scenario) -> int:
        return options.horizon or scenario.city.episode_steps

    def validate(self, config) -> None:
        from .env import MIXES

        o = config.options
        check = lambda ok, name, msg: None if ok else (_ for _ in ()).throw(ValueError(f"{name}: {msg}"))
        check(o.num_taxis >= 0, "num_taxis", f"must be >= 1 (or 0: the scenario's fleet), got {o.num_taxis}")
        check(o.max_wait >= 1, "max_wait", f"must be >= 1, got {o.max_wait}")
        check(o.reward in MIXES, "reward", f"must be one of {', '.join(MIXES)}, got {o.reward!r}")
        check(o.horizon >= 0, "horizon", f"must be >= 1 (or 0: the scenario's episode), got {o.horizon}")
        horizon = o.horizon
        if not horizon and self.knows(config.scenario):  # an unreadable scenario file fails here, named
            horizon = self.horizon(o, self.load(config.scenario))
        check(not horizon or horizon % config.rollout_steps == 0, "rollout_steps",
              f"must divide the horizon ({horizon}), got {config.rollout_steps}")
        check(o.demand_scale > 0, "demand_scale", f"must be positive, got {o.demand_scale}")

    def _env(self, options, scenario, mode: str):
        from .env import TaxiConfig, TaxiEnv

        return TaxiEnv(TaxiConfig(horizon=self.horizon(options, scenario), max_wait=options.max_wait, mode=mode,
                                  reward=options.reward))

    def build(self, config, scenario) -> Built:
        from .env import make_params

        o = config.options
        env = self._env(o, scenario, "poisson")
        params = make_params(scenario.city, num_taxis=self.fleet(o, scenario), seed=config.seed,
                             demand_scale=o.demand_scale)
        eval_env = self._env(o, scenario, "replay")
        day_params = lambda episodes: self.episode_params(config, scenario, episodes)
        validation = tuple(config.validation_days) or scenario.validation_days
        test = tuple(config.test_days) or scenario.test_days
        return Built(scenario=scenario, env=env, env_params=params, eval_env=eval_env,
                     validation=day_params(self.episodes(scenario, validation)),
                     test=day_params(self.episodes(scenario, test)), day_params=day_params)

    def episode_params(self, config, scenario, episodes: dict) -> dict:
        """{name: TaxiParams} replaying each episode's order counts with the config's fleet."""
        from .env import make_params

        o = config.options
        horizon = self.horizon(o, scenario)
        short = [n for n, orders in episodes.items() if len(orders) < horizon]
        if short:
            raise ValueError(f"episode(s) {', '.join(short)} have fewer than horizon={horizon} steps")
        return {n: make_params(scenario.city, num_taxis=self.fleet(o, scenario), seed=config.seed,
                               replay_orders=orders[:horizon]) for n, orders in episodes.items()}

    def episodes(self, scenario, names) -> dict:
        unknown = [n for n in names if n not in scenario.episodes]
        if unknown:
            raise ValueError(f"unknown episode(s) {', '.join(unknown)}; the scenario has {', '.join(scenario.episodes)}")
        return {n: scenario.episodes[n] for n in names}

    def baseline_rows(self, scenario, episodes: dict, config, *, bound: bool = True) -> dict:
        """Stay, random and the demand-gap greedy repositioner on each episode, and unless `bound`
        is off, the clairvoyant LP bound (a HiGHS LP: under a second on an AMoD area; on larger
        cities its zone relaxation, minutes per episode: bound.py)."""
        import jax

        from ...core.rollout import rollout
        from .baselines import demand_gap, random_policy, stay
        from ...core.errors import BoundNotSolved
        from .bound import clairvoyant_bound, destination_zones, lp_terms

        env = self._env(config.options, scenario, "replay")
        params = self.episode_params(config, scenario, episodes)
        key = jax.random.key(config.seed)
        rows = {}
        for name, p in params.items():
            rows[name] = []
            for label, policy in (("stay", stay), ("random", random_policy), ("greedy (demand gap)", demand_gap)):
                m = jax.device_get(rollout(policy, env, p, key))
                rows[name].append({"policy": label, **{k: float(v) for k, v in m.items()}})
            if bound:
                zones = None if lp_terms(p, env.config.horizon) <= BOUND_MAX_TERMS else destination_zones(p, BOUND_ZONES)
                label = "bound (clairvoyant LP)" if zones is None else f"bound (clairvoyant LP, {BOUND_ZONES} zones)"
                try:
                    lp = clairvoyant_bound(p, horizon=env.config.horizon, max_wait=env.config.max_wait, zones=zones,
                                           time_limit=BOUND_TIME_LIMIT)
                except BoundNotSolved as e:  # the day keeps its row, with no numbers (NaN in the means)
                    print(f"taxi bound, {name}: {e}", flush=True)
                    lp = {}
                rows[name].append({"policy": label, **lp})
        return rows

    def scenario_arguments(self, parser) -> None:
        from .scenarios import scenario_arguments

        scenario_arguments(parser)

    def needs_raw_data(self, args) -> bool:
        return not args.trips  # a user's TLC files need no raw data folder

    def write_scenarios(self, args, data, out) -> tuple:
        from .scenarios import scenario_from_trip_files, write_bundled

        if args.trips:
            return [scenario_from_trip_files(args, out if str(out).endswith(".npz") else "taxi-tlc.npz")], {}
        return write_bundled(data, out), {}

    def film(self, built, config, episode, policy, seed: int = 0, scenario=None):
        from .film import film

        return film(built, episode, policy, seed)

    def training_label(self, config) -> str:
        return f"training (Poisson orders, {self.fleet(config.options, self.load(config.scenario)):,} taxis)"


TASK = TaxiTask()
