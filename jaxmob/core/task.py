"""The plug-in through which generic code reaches an environment.

The trainer, sweep, evaluator and CLI know an environment only through its
`Task` (found by name in `jaxmob.core.registry`): its own options, its
scenarios, how a config becomes training/validation/test environments, its
headline metric (checkpoint selection, progress bar, tables), its traced
reward-shaping coefficients and its baseline table. The compiled side of the
contract is the `Environment` protocol in `base.py`.
"""
from __future__ import annotations

import abc
import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable


def option(default, help: str):
    """A field of a Task's `Options` dataclass: its default and the help of its `--flag`."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Built:
    """Everything a training run needs from its environment, for one config.

    `validation` and `test` map a day (or episode) name to the env params
    of that evaluation episode under `eval_env`; `day_params(days)` builds the
    same for other days of the scenario (or None where that makes no sense)."""

    scenario: Any
    env: Any
    env_params: Any
    eval_env: Any
    validation: dict
    test: dict
    training_days: tuple = ()
    day_params: Callable | None = None

    def episode_name(self, name: str | None = None) -> str:
        """`name`, or the default evaluation episode: the first test one."""
        return name or next(iter(self.test))

    def episode(self, name: str | None = None):
        """Params of evaluation episode `name`, a test or validation one (default: the first test one)."""
        name = self.episode_name(name)
        for split in (self.test, self.validation):
            if name in split:
                return split[name]
        raise ValueError(f"no evaluation episode {name!r}; test: {', '.join(self.test)}; "
                         f"validation: {', '.join(self.validation)}")


class Task(abc.ABC):
    """One environment family as seen by the generic code (see module doc). Its members come in
    four groups: what it is (names, options, action kinds, declared agent fields), its scenarios
    (load, describe, draw, rebuild from raw data, read a user's file), training and evaluation
    (build, validate, shaping, episodes, baselines) and its tables and figures."""

    # ----------------------------------------------------------------- what it is
    name: str = ""
    version: int = 1  # of the dynamics: raised when a step changes what it does (`jaxmob.make("NAME-vK")`)
    headline: str = ""  # the metric that chooses checkpoints and leads every table
    reference_policy: str = "greedy"  # the baseline row (by name prefix) a learned policy must beat
    higher_is_better: bool = True  # of the headline metric (routing's total wait: lower is better)
    Options: type = None  # frozen dataclass of the environment's own options (fields carry `help` metadata)
    shaping_names: tuple = ()  # options that are traced reward-shaping coefficients (swept like lr)
    default_scenario: str = ""
    # the policy that is deployed and so chooses checkpoints on validation days: 'argmax', or
    # 'sampled' (mean over `eval_episodes` draws) where identical agents must not act alike
    deployed: str = "argmax"
    defaults: dict = {}  # the env's defaults for generic fields (a config's explicit values win)
    action_kinds: tuple = ("discrete",)  # the action kinds its environments offer (a learner core must train one)
    provides: tuple = ()  # optional `Agents` fields it declares: "tokens", "graph"
    raw_data: str = ""  # what `write_scenarios` reads under the raw data folder (e.g. "amod-scenarios")
    user_file: str = ""  # the kind of user file `read_episodes` takes (`eval --trips/--events FILE`), "" for none

    # ----------------------------------------------------------------- scenarios
    @abc.abstractmethod
    def scenarios(self) -> list:
        """Names of the bundled scenarios."""

    def knows(self, name: str) -> bool:
        """Whether `name` can be loaded (a bundled name; some envs also take a file path)."""
        return name in self.scenarios()

    @abc.abstractmethod
    def load(self, name: str):
        """The scenario called `name` (a clear error for an unknown one)."""

    def describe(self, name: str) -> str:
        """One scenario in a few lines (`jaxmob info`)."""
        return str(self.load(name))

    def show(self, scenario, path):
        """Draw the scenario's map to `path` (`jaxmob show`); None where the env has no map."""
        return None

    def scenario_arguments(self, parser) -> None:
        """Flags of `jaxmob scenarios NAME` beyond `--data` and `--out`."""

    def needs_raw_data(self, args) -> bool:
        """Whether `write_scenarios` reads the raw data folder for these arguments."""
        return True

    # Optional capabilities, None where the env has none (the CLI says so in one line):
    # write_scenarios(args, data, out) -> (paths, {source: why it failed}): rebuild the bundled
    #     scenarios from raw folder `data`, each on its own
    #     (what `raw_data` names under it) into folder `out` (`jaxmob scenarios NAME`);
    # read_episodes(scenario, path, *, day=None, **extra) -> ({name: episode data}, report): the days
    #     of a user's file (`eval --<user_file> FILE`) as evaluation episodes, and what was dropped.
    # film(built, config, episode, policy, seed, scenario=None) -> core.film.Film: one evaluation
    #     episode drawn on the scenario's map (`jaxmob render`); `episode` a name or None (the first
    #     test episode), `policy` the name of one of the env's own policies (None: its default) or a
    #     learned policy `(key, state, params, env) -> actions` of `built.eval_env`; an env without
    #     `build` gets built=None, config=None and the `scenario` name (None: its default).
    write_scenarios = None
    read_episodes = None
    film = None

    def eval_arguments(self, parser) -> tuple:
        """Add `jaxmob eval` flags of this env's own (beside `--<user_file>`); returns their dest names,
        passed to `read_episodes` as keywords."""
        return ()

    # ----------------------------------------------------------------- training and evaluation
    # build(config, scenario) -> Built: the training env and params, the evaluation env and the
    # validation/test episodes; None for an env of planners (it has `planner_cli` instead, and
    # `registry.fits` refuses every algorithm on it before anything is built).
    build = None

    def validate(self, config) -> None:
        """Raise ValueError naming the option for an impossible value of `config.options`
        (or of its combination with the generic fields)."""

    def shaping(self, options) -> dict:
        """The traced reward-shaping coefficients of `options` (for `Hyper.shaping`)."""
        return {n: getattr(options, n) for n in self.shaping_names}

    def baseline_rows(self, scenario, episodes: dict, config, *, bound: bool = True) -> dict:
        """{episode: [row per baseline]} on the evaluation episodes `episodes`
        ({name: episode data}); rows hold `policy` and the `columns` metrics."""
        return {d: [] for d in episodes}

    def episodes(self, scenario, names) -> dict:
        """{name: episode data} for evaluation episodes of `scenario` (replay days)."""
        return {n: n for n in names}

    # ----------------------------------------------------------------- tables and figures
    columns: tuple = ()  # metrics of a table row, headline first
    headers: tuple = ()  # their column titles

    def format_table(self, rows: list) -> str:
        """A plain-text table of metric rows (`columns`), one line per row."""
        cols = ("policy",) + tuple(self.columns)
        cell = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)
        lines = ["  ".join(("policy",) + tuple(self.headers or self.columns))]
        lines += ["  ".join(cell(r.get(c, "")) for c in cols) for r in rows]
        return "\n".join(lines)

    def is_option(self, name: str) -> bool:
        """Whether `name` is one of the environment's own options."""
        return name in {f.name for f in dataclasses.fields(self.Options)}

    def planner_cli(self):
        """`(add_arguments(parser), main(args) -> exit code)` replacing `jaxmob train` and `jaxmob eval`
        for an environment whose policies are online planners (nothing to train), or None."""
        return None

    def training_label(self, config) -> str:
        """Legend label of the training curve (what training episodes are)."""
        return "training"

    def group_map(self, scenario, snapshots: list, metrics: list, path):
        """Draw HAG-PS group assignments on the scenario's map; None where the env has no map."""
        return None

    def options_from(self, values: dict):
        """`Options` from a mapping (JSON lists become tuples), unknown names refused."""
        known = {f.name for f in dataclasses.fields(self.Options)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"env {self.name!r} has no option(s) {', '.join(unknown)}; its options: {', '.join(sorted(known))}")
        return self.Options(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


class NpzScenarios:
    """Scenarios of a Task kept as `.npz` files: the bundled ones by name and any `.npz` path, through
    `scenario_module` (its `bundled()`, `load(name)` and `write_bundled(source, out)`). Put it before
    `Task` among the bases."""

    scenario_module: str = ""

    def _scenario_module(self):
        return importlib.import_module(self.scenario_module)

    def scenarios(self) -> list:
        return self._scenario_module().bundled()

    def knows(self, name: str) -> bool:
        return name in self.scenarios() or name.endswith(".npz")

    def load(self, name: str):
        return self._scenario_module().load(name)
