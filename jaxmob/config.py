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
    alg: str = _f("hagps", "algorithm: share_all | ippo | mappo | no_share | hagps | madarl (attention; envs with token observations, e.g. taxi) | ddpg | maddpg | meta (off-policy, continuous actions, e.g. amod)")
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
    hidden: tuple = _f((64, 64), "hidden layer sizes, comma separated")
    eval_every: int = _f(1, "evaluate on the validation days every this many chunks (0: only at the end)")
    validation_days: tuple = _f((), "days that choose the best checkpoint (default: the scenario's validation days)")
    test_days: tuple = _f((), "days of the final report, never used to choose anything (default: the scenario's test days)")
    eval_episodes: int = _f(5, "sampled-policy episodes per test day in the final report")
    out_dir: str = _f("runs/{alg}-{scenario}-s{seed}", "folder for metrics, plots and checkpoints")
    keep_last: int = _f(2, "checkpoints kept (plus the best by validation service ratio)")
    progress: bool = _f(True, "show a progress bar")
    # HAG-PS (alg hagps); thresholds are traced, so sweeps vmap over them
    d_split: float = _f(2.0, "HAG-PS: split a local group when its KL dispersion (nats) exceeds this")
    tau_merge: float = _f(0.5, "HAG-PS: merge two local groups whose symmetrised KL is below this")
    d_split_global: float = _f(4.0, "HAG-PS: the same for global (trunk) groups")
    tau_merge_global: float = _f(0.5, "HAG-PS: the same for global (trunk) groups")
    g_max: int = _f(4, "HAG-PS: cap on global groups (trunks)")
    l_max: int = _f(8, "HAG-PS: cap on local groups (actor-critic heads)")
    id_dim: int = _f(8, "HAG-PS: identity embedding size (0 disables)")
    window: int = _f(24, "HAG-PS: trajectory steps per agent fed to the encoder (<= rollout_steps)")
    head: str = _f("shared", "HAG-PS: local head: shared (one 128-unit layer feeds logits and value, the paper) | separate (actor and critic layers of their own)")
    attention: str = _f("both", "MADARL: attention in the actor (local: own cell vs its neighbours) and critic (global: over every cell): none | local | global | both")
    critic: str = _f("central", "HAG-PS: central (one critic on the global state + identity embedding, as MAPPO: the default, see README) | local (value from the agent's local head, the paper)")
    # the off-policy core (alg ddpg | maddpg | meta): replay, targets, exploration
    buffer_size: int = _f(4096, "DDPG/MADDPG/META: replay buffer size in transitions (kept in the checkpoint)")
    batch_size: int = _f(256, "DDPG/MADDPG/META: transitions per gradient step")
    gradient_steps: int = _f(20, "DDPG/MADDPG/META: gradient steps per update (after each rollout)")
    tau: float = _f(0.01, "DDPG/MADDPG/META: Polyak rate of the target networks")
    exploration_noise: float = _f(0.2, "DDPG/MADDPG/META: std of the Gaussian action noise while training")
    critic_lr: float = _f(1e-3, "DDPG/MADDPG/META: critic learning rate (lr is the actor's)")
    options: object = _f(None, "the environment's own options (set through their own flags)", cli=False)

    def __init__(self, env: str = "rebalance", options=None, **values):
        from .envs.registry import get

        task = get(env)
        own = {f.name for f in dataclasses.fields(TrainConfig)} - {"env", "options"}
        env_values = {k: v for k, v in values.items() if k not in own}
        if options is None or isinstance(options, dict):
            base = task.options_from(dict(options or {}))
        else:
            base = options
        opts = task.options_from({**dataclasses.asdict(base), **env_values})
        object.__setattr__(self, "env", env)
        object.__setattr__(self, "options", opts)
        for f in dataclasses.fields(TrainConfig):
            if f.name in own:
                value = values.get(f.name, task.defaults.get(f.name, f.default))
                object.__setattr__(self, f.name, tuple(value) if isinstance(value, list) else value)
        if not self.scenario:
            object.__setattr__(self, "scenario", task.default_scenario)

    def __getattr__(self, name):
        options = self.__dict__.get("options")
        if options is not None and not name.startswith("__") and hasattr(options, name):
            return getattr(options, name)
        raise AttributeError(f"TrainConfig has no field or {self.__dict__.get('env', '?')} option {name!r}")

    @property
    def task(self):
        from .envs.registry import get

        return get(self.env)

    @property
    def run_dir(self) -> str:
        scenario = Path(self.scenario).stem if self.scenario.endswith(".npz") else self.scenario
        return self.out_dir.format(alg=self.alg, scenario=scenario, seed=self.seed)

    def validate(self, known_scenario: bool = True) -> "TrainConfig":
        """Check every field (generic ones here, the environment's options by its
        Task) before anything compiles; ConfigError names the field."""
        from .algos.hagps import CRITIC_KINDS, HEAD_KINDS
        from .algos.dpg import DPG_ALGORITHMS
        from .algos.madarl import ATTENTION
        from .algos.policies import ALGORITHMS

        algs = ALGORITHMS + ("hagps", "madarl") + DPG_ALGORITHMS
        check = lambda ok, name, msg: None if ok else (_ for _ in ()).throw(ConfigError(f"{name}: {msg}"))
        check(self.alg in algs, "alg", f"unknown algorithm {self.alg!r}; choose from {', '.join(algs)}")
        for name in ("total_updates", "updates_per_chunk", "num_envs", "rollout_steps", "epochs", "minibatches"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(self.alg in DPG_ALGORITHMS or (self.num_envs * self.rollout_steps) % self.minibatches == 0, "minibatches",
              f"must divide num_envs x rollout_steps = {self.num_envs * self.rollout_steps}")
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
        check(1 <= self.g_max <= self.l_max, "g_max", f"need 1 <= g_max <= l_max, got g_max={self.g_max}, l_max={self.l_max}")
        check(self.id_dim >= 0, "id_dim", f"must be >= 0, got {self.id_dim}")
        check(self.alg != "hagps" or 1 <= self.window <= self.rollout_steps, "window", f"must lie in [1, rollout_steps={self.rollout_steps}], got {self.window}")
        check(self.head in HEAD_KINDS, "head", f"must be one of {', '.join(HEAD_KINDS)}, got {self.head!r}")
        check(self.attention in ATTENTION, "attention", f"must be one of {', '.join(ATTENTION)}, got {self.attention!r}")
        check(self.critic in CRITIC_KINDS, "critic", f"must be one of {', '.join(CRITIC_KINDS)}, got {self.critic!r}")
        for name in ("d_split", "tau_merge", "d_split_global", "tau_merge_global"):
            check(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        check(1 <= self.batch_size <= self.buffer_size, "batch_size",
              f"must lie in [1, buffer_size={self.buffer_size}], got {self.batch_size}")
        check(self.gradient_steps >= 1, "gradient_steps", f"must be >= 1, got {self.gradient_steps}")
        check(0 < self.tau <= 1, "tau", f"must lie in (0, 1], got {self.tau}")
        check(self.exploration_noise >= 0, "exploration_noise", f"must be >= 0, got {self.exploration_noise}")
        check(0 < self.critic_lr < 1, "critic_lr", f"must lie in (0, 1), got {self.critic_lr}")
        check(self.keep_last >= 1, "keep_last", f"must be >= 1, got {self.keep_last}")
        check(self.eval_every >= 0, "eval_every", f"must be >= 0, got {self.eval_every}")
        task = self.task
        try:
            task.validate(self)
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


def _fields(cls, env: str):
    """(field, owner) pairs of the flags of `cls` plus the options of `env`."""
    out = [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]
    if cls is TrainConfig:
        from .envs.registry import get

        out += list(dataclasses.fields(get(env).Options))
    return out


def add_config_arguments(parser: argparse.ArgumentParser, cls=TrainConfig, skip=(), env: str = "rebalance") -> None:
    """One flag per field, `--name VALUE`, with the field's help and default:
    the generic fields, then the options of environment `env`."""
    env_defaults = {}
    if cls is TrainConfig:
        from .envs.registry import get

        env_defaults = dict(get(env).defaults, scenario=get(env).default_scenario, env=env)
    for f in _fields(cls, env):
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
        elif f.name == "env":
            from .envs.registry import names

            parser.add_argument(flag, dest=f.name, choices=names(), default=default, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=type(default), default=default, help=help_text)


def config_from_args(args: argparse.Namespace, cls=TrainConfig, **overrides) -> TrainConfig:
    env = overrides.get("env", getattr(args, "env", "rebalance"))
    names = {f.name for f in _fields(cls, env)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(overrides)
    return cls(**values).validate()
