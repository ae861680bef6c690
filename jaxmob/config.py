"""Training configuration: one dataclass, validated before anything compiles,
and turned into `python -m jaxmob train` flags with their help text."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """An impossible configuration value; the message names the field."""


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


TRAIN_MODES = ("poisson", "levels", "replay")


@dataclass(frozen=True)
class TrainConfig:
    alg: str = _f("hagps", "algorithm: share_all | ippo | mappo | no_share | hagps")
    scenario: str = _f("manhattan-106", "bundled scenario to train on (see `python -m jaxmob info`)")
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
    reward_sharing: str = _f("team", "learning reward: team (mean over all agents: cooperative) | neighbors (mean over self and grid neighbours) | own")
    move_credit: float = _f(1.0, "weight of each agent's own-move credit in its learning reward: the trips its move is expected to save over the next credit_window steps, valued as reward, minus its relocation cost (0: team reward alone)")
    credit_window: int = _f(6, "steps ahead over which move credit counts expected shortfall (6 = one hour)")
    credit_model: str = _f("poisson", "trips a region loses in move credit: mean (expected shortfall) | poisson (its expectation under Poisson departures)")
    hidden: tuple = _f((64, 64), "hidden layer sizes, comma separated")
    train_mode: str = _f("levels", "training demand: poisson (the estimated rates) | levels (Poisson, each episode at the demand level of a random training day; the rates alone where a scenario has no training days) | replay (the training days' real trips)")
    demand_scale: float = _f(1.0, "multiplies the Poisson demand rates (train_mode poisson or levels)")
    horizon: int = _f(144, "steps per episode (144 x 10 min = one day)")
    move_amounts: tuple = _f((5, 10), "bikes per relocation action level, comma separated")
    alpha: float = _f(0.5, "reward weight of unserved demand")
    beta: float = _f(0.1, "reward weight (cost) per relocated bike")
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
    critic: str = _f("central", "HAG-PS: central (one critic on the global state + identity embedding, as MAPPO: the default, see README) | local (value from the agent's local head, the paper)")

    @property
    def run_dir(self) -> str:
        return self.out_dir.format(alg=self.alg, scenario=self.scenario, seed=self.seed)

    def validate(self, known_scenario: bool = True) -> "TrainConfig":
        from .algos.policies import ALGORITHMS

        algs = ALGORITHMS + ("hagps",)
        check = lambda ok, name, msg: None if ok else (_ for _ in ()).throw(ConfigError(f"{name}: {msg}"))
        check(self.alg in algs, "alg", f"unknown algorithm {self.alg!r}; choose from {', '.join(algs)}")
        for name in ("total_updates", "updates_per_chunk", "num_envs", "rollout_steps", "epochs", "minibatches", "horizon"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(self.horizon % self.rollout_steps == 0, "rollout_steps",
              f"must divide the horizon ({self.horizon}), got {self.rollout_steps}")
        check((self.num_envs * self.rollout_steps) % self.minibatches == 0, "minibatches",
              f"must divide num_envs x rollout_steps = {self.num_envs * self.rollout_steps}")
        check(self.total_updates % self.updates_per_chunk == 0, "updates_per_chunk",
              f"must divide total_updates ({self.total_updates}), got {self.updates_per_chunk}")
        check(0 < self.lr < 1, "lr", f"must lie in (0, 1), got {self.lr}")
        check(0 < self.gamma <= 1, "gamma", f"must lie in (0, 1], got {self.gamma}")
        check(0 <= self.gae_lambda <= 1, "gae_lambda", f"must lie in [0, 1], got {self.gae_lambda}")
        check(0 < self.clip_eps < 1, "clip_eps", f"must lie in (0, 1), got {self.clip_eps}")
        for name in ("ent_coef", "vf_coef", "alpha", "beta"):
            check(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        check(self.max_grad_norm > 0, "max_grad_norm", f"must be positive, got {self.max_grad_norm}")
        check(self.reward_sharing in ("own", "neighbors", "team"), "reward_sharing",
              f"must be own, neighbors or team, got {self.reward_sharing!r}")
        check(self.train_mode in TRAIN_MODES, "train_mode", f"must be one of {', '.join(TRAIN_MODES)}, got {self.train_mode!r}")
        check(self.eval_episodes >= 1, "eval_episodes", f"must be >= 1, got {self.eval_episodes}")
        check(not set(self.validation_days) & set(self.test_days), "test_days",
              f"must be disjoint from the validation days, both hold {sorted(set(self.validation_days) & set(self.test_days))}")
        check(self.demand_scale > 0, "demand_scale", f"must be positive, got {self.demand_scale}")
        check(self.move_credit >= 0, "move_credit", f"must be >= 0, got {self.move_credit}")
        check(self.credit_window >= 1, "credit_window", f"must be >= 1, got {self.credit_window}")
        check(self.credit_model in ("mean", "poisson"), "credit_model", f"must be mean or poisson, got {self.credit_model!r}")
        check(self.reward_scale > 0, "reward_scale", f"must be positive, got {self.reward_scale}")
        check(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "hidden", f"needs positive sizes, got {self.hidden}")
        check(len(self.move_amounts) >= 1 and all(m >= 1 for m in self.move_amounts), "move_amounts",
              f"needs positive amounts, got {self.move_amounts}")
        check(1 <= self.g_max <= self.l_max, "g_max", f"need 1 <= g_max <= l_max, got g_max={self.g_max}, l_max={self.l_max}")
        check(self.id_dim >= 0, "id_dim", f"must be >= 0, got {self.id_dim}")
        check(self.alg != "hagps" or 1 <= self.window <= self.rollout_steps, "window", f"must lie in [1, rollout_steps={self.rollout_steps}], got {self.window}")
        from .algos.hagps import CRITIC_KINDS, HEAD_KINDS

        check(self.head in HEAD_KINDS, "head", f"must be one of {', '.join(HEAD_KINDS)}, got {self.head!r}")
        check(self.critic in CRITIC_KINDS, "critic", f"must be one of {', '.join(CRITIC_KINDS)}, got {self.critic!r}")
        for name in ("d_split", "tau_merge", "d_split_global", "tau_merge_global"):
            check(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        check(self.keep_last >= 1, "keep_last", f"must be >= 1, got {self.keep_last}")
        check(self.eval_every >= 0, "eval_every", f"must be >= 0, got {self.eval_every}")
        from .city import available

        check(not known_scenario or self.scenario in available(), "scenario", f"unknown scenario {self.scenario!r}; available: {', '.join(available())}")
        return self


def _parse_tuple(kind):
    def parse(text: str):
        try:
            return tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from e
    return parse


def add_config_arguments(parser: argparse.ArgumentParser, cls=TrainConfig, skip=()) -> None:
    """One flag per dataclass field, `--name VALUE`, with the field's help and default."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        help_text = f"{f.metadata.get('help', '')} (default: {default if not isinstance(default, tuple) else ','.join(map(str, default)) or 'none'})"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif isinstance(default, tuple):
            kind = type(default[0]) if default else str
            parser.add_argument(flag, dest=f.name, type=_parse_tuple(kind), default=default, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=type(default), default=default, help=help_text)


def config_from_args(args: argparse.Namespace, cls=TrainConfig, **overrides) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(overrides)
    return cls(**values).validate()
