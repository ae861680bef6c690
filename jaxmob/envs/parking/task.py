"""On-street parking allocation as a plug-in of the generic trainer (`--env parking`).

Training episodes are `episode_minutes` windows of the calibrated request
model, each starting at a random minute of the day with the model's expected
occupancy parked; validation (3) and test (5) days are whole seeded days
(07:00-21:00) of the model, or, with `--events FILE`, the last real days of a
City of Melbourne event file (the request model is then re-fitted to its
training days). The optimised core learns (`--alg marl_gcn`, its ablations,
`maddpg`); the periphery follows `static_rule`, as does the order the queue is
served in. Baseline rows: the five hand rules (FIFO, SIRO, longest-free facility,
random facility, SPT; each over the whole city), periphery first under FIFO and
under SPT, and the clairvoyant assignment bound.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ...core.task import Built, NpzScenarios, Task, option



BOUND_TIME_LIMIT = 900.0  # seconds per day's bound LP in a run's report (the tables' script sets its own)


@dataclass(frozen=True)
class ParkingOptions:
    """The parking env's own options (`--env parking`)."""

    static_rule: str = option("fifo", "rule of the static (periphery) facilities and the order the queue is served in: "
                                      "fifo (oldest first, nearest free bay) | siro (random order, nearest free bay) | "
                                      "longest_free (the facility free longest first) | random_facility (CONTRACT.md)")
    demand_scale: float = option(1.0, "multiplies the calibrated request rates (1: the real Saturday's occupancy)")
    max_wait: int = option(10, "minutes a request cruises for a bay before it fails")
    episode_minutes: int = option(240, "minutes of a training episode (random start; evaluation days are whole)")
    history: int = option(3, "minutes of features in an observation (MARL-GCN's GRU window)")
    base_reward: float = option(1.0, "reward per vehicle parked in an optimised facility")
    cruise_penalty: float = option(0.1, "reward lost per minute of cruising (request to parked)")
    walk_penalty: float = option(0.0, "reward lost per minute of walking (bay to destination)")
    reward_scope: str = option("facility", "who pays the reward: facility (vehicles parked in the core's facilities) | "
                                           "destination (requests for the core, wherever they park)")
    events: str = option("", "a City of Melbourne parking event CSV: its last days become the validation and test days")


@lru_cache(maxsize=4)
def _events(path: str, scenario_name: str):
    from .events import read_events
    from .scenario import load

    return read_events(path, load(scenario_name))


class ParkingTask(NpzScenarios, Task):
    action_kinds = ("continuous",)  # each facility's priority in [-1, 1]
    provides = ("graph",)
    raw_data = "melbourne-parking"
    user_file = "events"
    scenario_module = "jaxmob.envs.parking.scenario"
    name = "parking"
    headline = "success_rate_core"  # the paper's claim: who parks in the CBD and Southbank (tables: at the peak too)
    reference_policy = "FIFO"  # oldest first to the nearest free bay: the strongest hand rule
    Options = ParkingOptions
    default_scenario = "melbourne-weekday-peak"  # where the rule decides who parks (the Saturday barely fills)
    defaults = dict(alg="marl_gcn", num_envs=8, rollout_steps=30, total_updates=100, updates_per_chunk=10,
                    buffer_size=2048, batch_size=32, gradient_steps=8, hidden=(32, 32), gamma=0.95, lr=3e-4,
                    critic_lr=1e-3, reward_scale=0.1, exploration_noise=0.2, eval_episodes=3)
    columns = ("success_rate_core", "success_rate_core_peak", "cruise_min_core_peak", "walk_min_core_peak", "cruise_min_core",
               "success_rate", "cruise_min", "walk_min", "reward")
    headers = ("success core", "success core peak", "cruise core peak", "walk core peak", "cruise core", "success",
               "cruise min", "walk min", "team reward")

    def validate(self, config) -> None:
        from .env import REWARD_SCOPES, STATIC_RULES

        o = config.options
        if o.static_rule not in STATIC_RULES:
            raise ValueError(f"static_rule: must be one of {', '.join(STATIC_RULES)}, got {o.static_rule!r}")
        if o.reward_scope not in REWARD_SCOPES:
            raise ValueError(f"reward_scope: must be one of {', '.join(REWARD_SCOPES)}, got {o.reward_scope!r}")
        if o.walk_penalty < 0 or o.cruise_penalty < 0:
            raise ValueError(f"walk_penalty and cruise_penalty: must be >= 0, got {o.walk_penalty} and {o.cruise_penalty}")
        if not o.demand_scale > 0:
            raise ValueError(f"demand_scale: must be > 0, got {o.demand_scale}")
        for name in ("max_wait", "episode_minutes", "history"):
            if getattr(o, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(o, name)}")
        day = self.load(config.scenario).minutes if self.knows(config.scenario) else None
        if day is not None and o.episode_minutes > day:
            raise ValueError(f"episode_minutes: at most the day's {day}, got {o.episode_minutes}")

    def env(self, options, scenario, training: bool):
        from .env import ParkingConfig, ParkingEnv

        return ParkingEnv(ParkingConfig(horizon=options.episode_minutes if training else scenario.minutes,
                                        mode="poisson" if training else "replay", random_start=training,
                                        max_arrivals=64 if training else self.eval_slots(options, scenario),
                                        max_wait=options.max_wait, history=options.history))

    def eval_slots(self, options, model) -> int:
        """Arrival slots of the evaluation env: the busiest minute of its validation and test days, and
        at least 64 (nothing cut)."""
        _, validation, test = self.days(model)
        return max([64] + [d[0].shape[1] for d in self.episodes(model, validation + test).values()])

    def model(self, options, scenario):
        """The scenario runs use: its request model scaled by `demand_scale`, or fitted to the training
        days of `events` (whose last days then are the validation and test days)."""
        from dataclasses import replace

        if options.events:
            from .events import fit_model

            train, _, _ = _events(options.events, scenario.name).split()
            scenario = replace(fit_model(scenario, _events(options.events, scenario.name), train), events=options.events)
        return replace(scenario, rates=scenario.rates * options.demand_scale)

    @staticmethod
    def days(model) -> tuple:
        """(training, validation, test) day names of a model scenario."""
        if model.events:
            return _events(model.events, model.name).split()
        return (), tuple(model.validation_days), tuple(model.test_days)

    def params(self, options, scenario, replay=None):
        """Env params; a replayed day's tables are padded to the evaluation env's arrival slots, so every
        evaluation day has one shape (one compiled episode for them all)."""
        import numpy as np

        from .env import make_params

        if replay is not None:
            K = self.eval_slots(options, scenario)
            if replay[0].shape[1] > K:
                raise ValueError(f"a replayed day has {replay[0].shape[1]} requests in one minute; the evaluation env "
                                 f"holds {K} (the busiest minute of the validation and test days)")
            pad = lambda a, fill: np.pad(a, ((0, 0), (0, K - a.shape[1])), constant_values=fill)  # noqa: E731
            replay = (pad(replay[0], -1), pad(replay[1], 0), pad(replay[2], 0.0))
        return make_params(scenario, replay=replay, static_rule=options.static_rule, base_reward=options.base_reward,
                           cruise_penalty=options.cruise_penalty, walk_penalty=options.walk_penalty,
                           reward_scope=options.reward_scope)

    def build(self, config, scenario) -> Built:
        o = config.options
        model = self.model(o, scenario)
        training, validation, test = self.days(model)
        validation = tuple(config.validation_days) or validation
        test = tuple(config.test_days) or test
        day_params = lambda episodes: {n: self.params(o, model, d) for n, d in episodes.items()}  # noqa: E731
        return Built(scenario=model, env=self.env(o, model, True), env_params=self.params(o, model),
                     eval_env=self.env(o, model, False), validation=day_params(self.episodes(model, validation)),
                     test=day_params(self.episodes(model, test)),
                     training_days=tuple(training), day_params=day_params)

    def episodes(self, scenario, names) -> dict:
        """{name: (dest, stay, time) replay tables}: the real days of the scenario's event file, or
        seeded days of its request model."""
        if scenario.events:
            ev = _events(scenario.events, scenario.name)
            unknown = [n for n in names if n not in ev.days]
            if unknown:
                raise ValueError(f"no day {unknown[0]!r} in {scenario.events}; its days: {', '.join(sorted(ev.days))}")
            return {n: ev.days[n] for n in names}
        return {n: _model_day(scenario, n) for n in names}

    def baseline_rows(self, scenario, episodes: dict, config, *, bound: bool = True) -> dict:
        """The five hand rules (each over the whole city: its bids and its order of service) and
        periphery first under FIFO and SPT (baselines.py), per episode, and unless `bound` is off the clairvoyant
        bound (bound.py)."""
        from dataclasses import replace

        import jax

        from ...core.rollout import rollout
        from .baselines import BASELINES
        from .bound import BoundNotSolved, clairvoyant_bound

        o = config.options
        env = self.env(o, scenario, False)
        key = jax.random.key(config.seed)
        rows = {}
        for name, day in episodes.items():
            rows[name] = []
            for label, (rule, policy) in BASELINES.items():
                params = self.params(replace(o, static_rule=rule), scenario, day)
                metrics = jax.device_get(rollout(policy, env, params, key))
                rows[name].append({"policy": label, **{k: float(v) for k, v in metrics.items()}})
            if bound:  # a day the LP does not solve in time keeps its row, with no numbers (NaN in the means)
                try:
                    lp = clairvoyant_bound(self.params(o, scenario, day), max_wait=o.max_wait, time_limit=BOUND_TIME_LIMIT)
                except BoundNotSolved as e:
                    print(f"parking bound, {name}: {e}", flush=True)
                    lp = {}
                rows[name].append({"policy": "bound (clairvoyant assignment LP)", **lp})
        return rows

    def write_scenarios(self, args, data, out) -> tuple:
        from .scenario import write_bundled

        return write_bundled(data / self.raw_data, out), {}

    def read_episodes(self, scenario, path, *, day=None, **extra) -> tuple:
        """The days of a City of Melbourne parking event file as evaluation episodes (every day, or `day`)."""
        from .events import read_events

        events = read_events(path, scenario)
        names = [day] if day else sorted(events.days)
        unknown = [n for n in names if n not in events.days]
        if unknown:
            raise ValueError(f"no day {unknown[0]!r} in {path}; its days: {', '.join(sorted(events.days))}")
        return {n: events.days[n] for n in names}, events.report()

    def film(self, built, config, episode, policy, seed: int = 0, scenario=None):
        """A hand rule's episode runs with the rule set as `static_rule` (as its table row does)."""
        from dataclasses import replace

        from .film import film

        name = built.episode_name(episode)
        built.episode(name)  # a held-out day, or a clear error naming them
        day = lambda rule: self.params(replace(config.options, static_rule=rule), built.scenario,  # noqa: E731
                                       self.episodes(built.scenario, [name])[name])
        return film(built.eval_env, built, name, policy, seed, params_for=day)

    def training_label(self, config) -> str:
        return f"training ({config.options.episode_minutes}-minute windows of the request model)"


@lru_cache(maxsize=64)
def _model_day(scenario, name: str):
    return scenario.day(name)


TASK = ParkingTask()
