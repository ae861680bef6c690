"""The region-level AMoD fleet as a plug-in of the generic trainer (`--env amod`).

Scenarios: the 11 bundled AMoD benchmark cities (`nyc_brooklyn`, `chicago`,
`san_francisco`, `porto`, ...; see `scenario.py` for how the benchmark files
become them) and any `.npz` written by `scenario.save`. Training draws fresh
Poisson requests every episode; validation and test episodes are seeded draws
(3 and 5), never used for anything but choosing and reporting.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...core.task import Built, NpzScenarios, Task, option


def continuous(config) -> bool:
    """Whether the run's algorithm trains continuous actions (declared by its learner core)."""
    from ...core.registry import algorithm

    return algorithm(config.alg).core.action_kind == "continuous"


@dataclass(frozen=True)
class AmodOptions:
    """The AMoD env's own options (`--env amod`)."""

    action: str = option("auto", "region action: levels (a weight 0..levels-1 per region sets the desired fleet "
                             "distribution) | meta (a in [-1, 1] per region, Kuhn-Munkres dispatch) | auto (meta for "
                             "the off-policy algorithms ddpg/maddpg/meta, levels for the PPO family)")
    reward: str = option("auto", "what a region is paid: profit (the team reward, shared) | balance (META's: "
                             "min(requests, idle) / max(requests, idle) of its step) | auto (balance for the "
                             "off-policy algorithms, profit for the PPO family)")
    levels: int = option(5, "weights a region may choose from (action levels)")
    xi: float = option(0.1, "META's threshold: |a| <= xi keeps a region out of the dispatch")
    dispatch: str = option("paper", "META's dispatch: paper (a high region sends x_i = |a_i| idle_i, a low one asks "
                               "|a_j| idle_j, weights d_ij |x_i - y_j|, a pair moves x_i) | min (jaxmob's earlier "
                               "variant: asks |a_j| expected requests_j, weights on actions, moves min(offer, ask))")


MPC_POLICY = "MPC (forecast LP)"


class AmodTask(NpzScenarios, Task):
    action_kinds = ("discrete", "continuous")  # levels (PPO) or META's ratios (the off-policy core)
    raw_data = "amod-scenarios"
    scenario_module = "jaxmob.envs.amod.scenario"
    name = "amod"
    headline = "reward"
    user_file = "draws"  # eval --draws FILE: request draws (episode, step, origin, destination), e.g. the benchmark's
    reference_policy = "equal distribution"  # the benchmark's strongest hand rule
    Options = AmodOptions
    default_scenario = "nyc_brooklyn"
    defaults = dict(alg="mappo", num_envs=8, rollout_steps=19, minibatches=4, total_updates=100)
    columns = ("reward", "served_ratio", "profit", "rebalancing_cost", "rebalanced", "served", "requests")
    headers = ("reward", "served", "profit", "reb. cost", "moved", "served n", "requests")

    def validate(self, config) -> None:
        from .env import ACTIONS, DISPATCHES, REWARDS

        o = config.options
        if o.action not in ACTIONS + ("auto",):
            raise ValueError(f"action: must be one of {', '.join(ACTIONS + ('auto',))}, got {o.action!r}")
        if o.reward not in REWARDS + ("auto",):
            raise ValueError(f"reward: must be one of {', '.join(REWARDS + ('auto',))}, got {o.reward!r}")
        if self.action(config) == "levels" and continuous(config):
            raise ValueError(f"action: {config.alg} needs the continuous action (meta), got levels")
        if self.action(config) == "meta" and not continuous(config):
            raise ValueError(f"action: meta is continuous; {config.alg} needs discrete actions (levels)")
        if o.dispatch not in DISPATCHES:
            raise ValueError(f"dispatch: must be one of {', '.join(DISPATCHES)}, got {o.dispatch!r}")
        if o.levels < 2:
            raise ValueError(f"levels: must be >= 2, got {o.levels}")
        if not 0.0 <= o.xi < 1.0:
            raise ValueError(f"xi: must lie in [0, 1), got {o.xi}")
        if self.knows(config.scenario):
            horizon = self.load(config.scenario).horizon
            if horizon % config.rollout_steps:
                raise ValueError(f"rollout_steps: must divide the horizon ({horizon}), got {config.rollout_steps}")

    @staticmethod
    def action(config) -> str:
        if config.options.action != "auto":
            return config.options.action
        return "meta" if continuous(config) else "levels"

    @staticmethod
    def reward(config) -> str:
        if config.options.reward != "auto":
            return config.options.reward
        return "balance" if continuous(config) else "profit"

    def env(self, options, scenario, mode: str, action: str = "levels", reward: str = "profit"):
        from .env import AmodConfig, AmodEnv

        return AmodEnv(AmodConfig(horizon=scenario.horizon, mode=mode, action=action, reward=reward,
                                  levels=options.levels, max_steps=scenario.max_steps,
                                  dispatch=options.dispatch))

    def build(self, config, scenario) -> Built:
        from .env import make_params

        o = config.options
        day_params = lambda episodes: self.episode_params(config, scenario, episodes)  # noqa: E731
        validation = tuple(config.validation_days) or scenario.validation_days
        test = tuple(config.test_days) or scenario.test_days
        action, reward = self.action(config), self.reward(config)
        return Built(scenario=scenario, env=self.env(o, scenario, "poisson", action, reward),
                     env_params=make_params(scenario, xi=o.xi), eval_env=self.env(o, scenario, "replay", action, reward),
                     validation=day_params(self.episodes(scenario, validation)),
                     test=day_params(self.episodes(scenario, test)), day_params=day_params)

    def episode_params(self, config, scenario, episodes: dict) -> dict:
        from .env import make_params

        return {n: make_params(scenario, replay=requests, xi=config.options.xi) for n, requests in episodes.items()}

    def episodes(self, scenario, names) -> dict:
        return {n: scenario.requests(n) for n in names}

    def baseline_rows(self, scenario, episodes: dict, config, *, bound: bool = True) -> dict:
        """No rebalancing, equal distribution, and, unless `bound` is off (both are HiGHS LPs),
        MPC on the forecast and the clairvoyant LP bound, per episode."""
        import jax

        from ...core.rollout import rollout
        from .baselines import equal_distribution, mpc_episode, no_rebalancing
        from .bound import clairvoyant_bound
        from .env import make_params

        env = self.env(config.options, scenario, "replay", "levels")
        key = jax.random.key(config.seed)
        as_row = lambda label, m: {"policy": label, **{k: float(v) for k, v in jax.device_get(m).items()}}  # noqa: E731
        rows = {}
        for name, requests in episodes.items():
            params = make_params(scenario, replay=requests)
            rows[name] = [as_row(label, rollout(policy, env, params, key)) for label, policy in
                          (("no rebalancing", no_rebalancing), ("equal distribution", equal_distribution))]
            if bound:
                rows[name].append(as_row(MPC_POLICY, mpc_episode(env, params, scenario, key)))
                rows[name].append({"policy": "bound (clairvoyant LP)", **clairvoyant_bound(scenario, requests)})
        return rows

    def read_episodes(self, scenario, path, *, day=None) -> tuple:
        """The episodes of a request-draw file (`draws`: int (episode, step, R, R), e.g. the AMoD
        benchmark simulator's own test draws) as evaluation episodes `draw-0`, `draw-1`, ..."""
        from .scenario import read_draws

        draws = read_draws(path, scenario)
        episodes = {f"draw-{k}": d for k, d in enumerate(draws)}
        if day is not None:
            if day not in episodes:
                raise ValueError(f"no episode {day!r} in {path}; it has draw-0 .. draw-{len(draws) - 1}")
            episodes = {day: episodes[day]}
        per_episode = draws.sum(axis=(1, 2, 3)).mean()
        report = f"{path}: {len(draws)} episodes of {draws.shape[1]} matchings, {per_episode:,.1f} requests each"
        return episodes, report

    def film(self, built, config, episode, policy, seed: int = 0, scenario=None):
        """A learned policy acts in the run's own evaluation env; the hand rules set levels."""
        from .film import film

        env = built.eval_env if callable(policy) else self.env(config.options, built.scenario, "replay", "levels")
        return film(env, built, episode, policy, seed)

    def training_label(self, config) -> str:
        return "training (Poisson requests)"

    def scenario_arguments(self, parser) -> None:
        parser.add_argument("--json", metavar="FILE", help="build one city of your own from a benchmark-format "
                            "scenario_<city>.json instead of the raw folder (needs --out outside the package)")
        parser.add_argument("--demand-ratio", type=float, help="with --json: demand multiplier (default: the city's "
                            "calibration entry; required without one)")
        parser.add_argument("--json-hr", type=int, help="with --json: the hour the episode starts (same default)")
        parser.add_argument("--tstep", type=int, help="with --json: minutes per step (same default, else 3)")
        parser.add_argument("--beta", type=float, help="with --json: cost per vehicle-minute driven (same default)")

    def needs_raw_data(self, args) -> bool:
        return not args.json

    def write_scenarios(self, args, data, out) -> tuple:
        from pathlib import Path

        from .scenario import BUNDLED_DIR, from_json, save, write_bundled

        if not args.json:
            return write_bundled(data / self.raw_data, out)
        package = BUNDLED_DIR.parents[2].resolve()  # the jaxmob package
        if not args.out or Path(out).resolve().is_relative_to(package):
            raise ValueError("--json needs --out: a folder outside the jaxmob package for your scenario")
        scenario = from_json(args.json, demand_ratio=args.demand_ratio, json_hr=args.json_hr, tstep=args.tstep,
                             beta=args.beta)
        Path(out).mkdir(parents=True, exist_ok=True)
        path = Path(out) / f"{scenario.name}.npz"
        save(scenario, path)
        print(scenario)
        print(f"train on it: jaxmob train --env amod --scenario {path}")
        return [path], {}


TASK = AmodTask()
