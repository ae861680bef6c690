"""Training configuration: one dataclass, validated before anything compiles,
and turned into `python -m jaxmob train` flags with their help text."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """An impossible configuration value; the message names the field."""


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True, init=False)
class TrainConfig:
    """A training run: generic trainer fields, plus `options`, the chosen
    environment's own options dataclass (its Task's `Options`).

    `TrainConfig(env=..., **values)` takes both kinds of field by name (an
    environment option such as `train_mode` goes into `options`, unknown names
    are refused) and `config.<option>` reads an option back, so configs stay
    flat to write while the trainer never needs to know an environment's options.
    """

    env: str = _f("rebalance", "environment (see `python -m jaxmob train --env NAME --help`)")
    alg: str = _f("hagps", "algorithm (see `python -m jaxmob train --alg NAME --help` for its options)")
    scenario: str = _f("", "bundled scenario to train on (default: the environment's default; see `python -m jaxmob info`)")
    seed: int = _f(0, "random seed; the same seed gives the same result")
    total_updates: int = _f(400, "PPO updates in the whole run (HAG-PS on manhattan-106: see the README for the measured time on a 2-core CPU)")
    updates_per_chunk: int = _f(10, "updates fused into one compiled lax.scan between logging/checkpoints")
    num_envs: int = _f(8, "parallel environments (days) per update")
    rollout_steps: int = _f(144, "env steps per environment per update (must divide the horizon)")
    epochs: int = _f(4, "PPO epochs per update")
    minibatches: int = _f(4, "minibatches per epoch (must divide num_envs x rollout_steps)")
    lr: float = _f(1e-3, "Adam learning rate")
    gamma: float = _f(0.995, "discount (HAG-PS: 0.995)")
    gae_lambda: float = _f(0.95, "GAE lambda (HAG-PS: 0.95)")
    clip_eps: float = _f(0.2, "PPO ratio clip")
    ent_coef: float = _f(0.01, "entropy bonus")
    vf_coef: float = _f(0.5, "value-loss weight")
    max_grad_norm: float = _f(0.5, "global gradient-norm clip")
    reward_scale: float = _f(0.1, "multiplies rewards before GAE (keeps values O(10))")
    distinct_observations: bool = _f(True, "run networks that treat agents alike (MADARL) once per distinct "
                                           "observation where the env groups agents by it (taxi: per cell and "
                                           "status), not once per agent: same outputs and gradient, far fewer calls")
    hidden: tuple = _f((64, 64), "hidden layer sizes, comma separated")
    eval_every: int = _f(1, "evaluate on the validation days every this many chunks (0: only at the end)")
    validation_days: tuple = _f((), "days that choose the best checkpoint (default: the scenario's validation days)")
    test_days: tuple = _f((), "days of the final report, never used to choose anything (default: the scenario's test days)")
    eval_episodes: int = _f(5, "sampled-policy episodes per test day in the final report")
    out_dir: str = _f("runs/{alg}-{scenario}-s{seed}", "folder for metrics, plots and checkpoints")
    keep_last: int = _f(2, "checkpoints kept (plus the best by validation service ratio)")
    progress: bool = _f(True, "show a progress bar")
    logger: str = _f("jsonl", "where the metrics go: jsonl (metrics.jsonl and eval.jsonl, always written) or "
                              "tensorboard (also TensorBoard event files in the run's tb/ folder)")
    # the off-policy core (DDPG, MADDPG, META, MARL-GCN): replay, targets, exploration
    buffer_size: int = _f(4096, "off-policy core: replay buffer size in transitions (kept in the checkpoint)")
    batch_size: int = _f(256, "off-policy core: transitions per gradient step")
    gradient_steps: int = _f(20, "off-policy core: gradient steps per update (after each rollout)")
    tau: float = _f(0.01, "off-policy core: Polyak rate of the target networks")
    exploration_noise: float = _f(0.2, "off-policy core: std of the Gaussian action noise while training (discrete actions: the uniform's share of each draw)")
    exploration_final: float = _f(1.0, "off-policy core: the exploration noise at the last update as a share of "
                                  "exploration_noise, reached by a linear decay (1: constant)")
    critic_lr: float = _f(1e-3, "off-policy core: critic learning rate (lr is the actor's)")
    options: object = _f(None, "the environment's own options (set through their own flags)", cli=False)
    alg_options: object = _f(None, "the algorithm's own options (set through their own flags)", cli=False)

    def __init__(self, env: str = "rebalance", options=None, alg_options=None, **values):
        from .core.registry import algorithm, get

        task = get(env)
        own = {f.name for f in dataclasses.fields(TrainConfig)} - {"env", "options", "alg_options"}
        alg_name = values.get("alg", task.defaults.get("alg", TrainConfig.alg))
        try:
            alg = algorithm(alg_name)
        except ValueError as e:
            raise ConfigError(f"alg: {e}") from None
        env_names = {f.name for f in dataclasses.fields(task.Options)}
        alg_names = set(alg.option_names)
        unknown = sorted(set(values) - own - env_names - alg_names)
        if unknown:
            raise TypeError(f"no field or option {', '.join(unknown)} for env {env} and alg {alg_name} "
                            f"(env options: {', '.join(sorted(env_names)) or 'none'}; "
                            f"{alg_name} options: {', '.join(sorted(alg_names)) or 'none'})")
        base = options if options is not None and not isinstance(options, dict) else task.options_from(dict(options or {}))
        opts = task.options_from({**dataclasses.asdict(base), **{k: v for k, v in values.items() if k in env_names}})
        # another algorithm's options object (a `dataclasses.replace(config, alg=...)`) does not carry over
        alg_base = alg_options if alg.Options is not None and isinstance(alg_options, alg.Options) else None
        alg_values = {**(dataclasses.asdict(alg_base) if alg_base is not None else
                         dict(alg_options) if isinstance(alg_options, dict) else {}),
                      **{k: v for k, v in values.items() if k in alg_names}}
        object.__setattr__(self, "env", env)
        object.__setattr__(self, "options", opts)
        object.__setattr__(self, "alg_options", alg.options_from(alg_values))
        for f in dataclasses.fields(TrainConfig):
            if f.name in own:
                value = values.get(f.name, task.defaults.get(f.name, f.default))
                object.__setattr__(self, f.name, tuple(value) if isinstance(value, list) else value)
        if not self.scenario:
            object.__setattr__(self, "scenario", task.default_scenario)

    def __getattr__(self, name):
        for group in ("options", "alg_options"):
            options = self.__dict__.get(group)
            if options is not None and not name.startswith("__") and hasattr(options, name):
                return getattr(options, name)
        raise AttributeError(f"TrainConfig has no field, {self.__dict__.get('env', '?')} option or "
                             f"{self.__dict__.get('alg', '?')} option {name!r}")

    @property
    def algorithm(self):
        from .core.registry import algorithm

        return algorithm(self.alg)

    @property
    def task(self):
        from .core.registry import get

        return get(self.env)

    @property
    def run_dir(self) -> str:
        scenario = Path(self.scenario).stem if self.scenario.endswith(".npz") else self.scenario
        return self.out_dir.format(alg=self.alg, scenario=scenario, seed=self.seed)

    def validate(self, known_scenario: bool = True) -> "TrainConfig":
        """Check every field (generic ones here, the environment's options by its
        Task) before anything compiles; ConfigError names the field."""
        from .core.registry import algorithms_for, fits

        check = lambda ok, name, msg: None if ok else (_ for _ in ()).throw(ConfigError(f"{name}: {msg}"))
        task, alg = self.task, self.algorithm
        why = fits(task, alg)
        check(why is None, "alg", f"{why}; algorithms that fit env {self.env}: {', '.join(algorithms_for(task)) or 'none'}")
        for name in ("total_updates", "updates_per_chunk", "num_envs", "rollout_steps", "epochs", "minibatches"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(self.total_updates % self.updates_per_chunk == 0, "updates_per_chunk",
              f"must divide total_updates ({self.total_updates}), got {self.updates_per_chunk}")
        check(0 < self.lr < 1, "lr", f"must lie in (0, 1), got {self.lr}")
        check(0 < self.gamma <= 1, "gamma", f"must lie in (0, 1], got {self.gamma}")
        check(0 <= self.gae_lambda <= 1, "gae_lambda", f"must lie in [0, 1], got {self.gae_lambda}")
        check(0 < self.clip_eps < 1, "clip_eps", f"must lie in (0, 1), got {self.clip_eps}")
        for name in ("ent_coef", "vf_coef"):
            check(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        check(self.max_grad_norm > 0, "max_grad_norm", f"must be positive, got {self.max_grad_norm}")
        check(self.eval_episodes >= 1, "eval_episodes", f"must be >= 1, got {self.eval_episodes}")
        check(not set(self.validation_days) & set(self.test_days), "test_days",
              f"must be disjoint from the validation days, both hold {sorted(set(self.validation_days) & set(self.test_days))}")
        check(self.reward_scale > 0, "reward_scale", f"must be positive, got {self.reward_scale}")
        check(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "hidden", f"needs positive sizes, got {self.hidden}")
        check(self.keep_last >= 1, "keep_last", f"must be >= 1, got {self.keep_last}")
        check(self.logger in ("jsonl", "tensorboard"), "logger", f"must be jsonl or tensorboard, got {self.logger!r}")
        if self.logger == "tensorboard":
            import importlib.util

            check(importlib.util.find_spec("tensorboardX") is not None, "logger",
                  "tensorboard needs the tensorboardX package (pip install 'jaxmob[tensorboard]')")
        check(self.eval_every >= 0, "eval_every", f"must be >= 0, got {self.eval_every}")
        try:
            for validate in (alg.core.validate, alg.validate, task.validate):
                if validate is not None:
                    validate(self)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        check(not known_scenario or task.knows(self.scenario), "scenario",
              f"unknown scenario {self.scenario!r} of env {self.env}; available: {', '.join(task.scenarios())}")
        return self


def _parse_tuple(kind):
    def parse(text: str):
        try:
            return tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from e
    return parse


def default_alg(env: str) -> str:
    """The algorithm a run on `env` trains unless `--alg` says otherwise."""
    from .core.registry import get

    return get(env).defaults.get("alg", TrainConfig.alg)


def _fields(env: str, alg: str):
    """The flags of a run: the generic fields, the options of `env` and those of `alg`."""
    from .core.registry import algorithm, get

    out = [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)]
    out += list(dataclasses.fields(get(env).Options))
    Options = algorithm(alg).Options
    return out + (list(dataclasses.fields(Options)) if Options else [])


def add_config_arguments(parser: argparse.ArgumentParser, skip=(), env: str = "rebalance", alg: str | None = None) -> None:
    """One flag per field, `--name VALUE`, with the field's help and default:
    the generic fields, then the options of environment `env` and of algorithm `alg`."""
    from .core.registry import algorithm_names, get, names

    alg = alg or default_alg(env)
    env_defaults = dict(get(env).defaults, scenario=get(env).default_scenario, env=env, alg=alg)
    for f in _fields(env, alg):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = env_defaults.get(f.name, f.default)
        help_text = f"{f.metadata.get('help', '')} (default: {default if not isinstance(default, tuple) else ','.join(map(str, default)) or 'none'})"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif isinstance(default, tuple):
            kind = type(default[0]) if default else str
            parser.add_argument(flag, dest=f.name, type=_parse_tuple(kind), default=default, help=help_text)
        elif f.name in ("env", "alg"):
            choices = names() if f.name == "env" else algorithm_names()
            parser.add_argument(flag, dest=f.name, choices=choices, default=default, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=type(default), default=default, help=help_text)


def config_from_args(args: argparse.Namespace, **overrides) -> TrainConfig:
    env = overrides.get("env", getattr(args, "env", "rebalance"))
    alg = overrides.get("alg", getattr(args, "alg", None) or default_alg(env))
    names = {f.name for f in _fields(env, alg)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(overrides)
    return TrainConfig(**values).validate()
