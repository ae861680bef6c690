"""Bike-sharing rebalancing (the HAG-PS setting), compiled with JAX.

The dynamics, state layout, step order and reward are fixed by
`docs/rebalance-dynamics.md`; `jaxmob/envs/reference.py` implements the same
step in plain NumPy and the tests check the two agree exactly.

Design for speed (thousands of cities under `vmap` on a CPU):
- every count is int32 and every table a step reads is precomputed in NumPy by
  `make_params` (destination alias tables, relocation lags, nearest-region order, replay
  windows), so a step does only gathers, compares and scatters;
- Poisson mode draws exactly `R + M` 32-bit words per city-step (`random_words`:
  a fused Threefry, half the hashing of `jax.random.bits`): one per region
  (demand, by Poisson inversion) and one per served-trip slot (destination, by
  Walker's alias method on the origin's `od_prob` row: one table lookup instead
  of a log2(R)-step CDF search); served trips fill the `M` slots grouped by
  origin, so a slot's origin is a prefix count and nothing is sorted;
- a step's randomness is separated out (`sample_exogenous`) so the NumPy
  reference can be fed the very same draws (`step_with`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from .city.core import City, DayTrips
from ...core.env import Agents, Environment, Spec, accumulate, is_int
from ...core.random import poisson_by_inversion, random_words, uniform_from_bits

MODES = ("poisson", "replay")


# ----------------------------------------------------------------------- config
@dataclass(frozen=True)
class RebalanceConfig:
    """Static settings (compile-time constants) of the rebalancing environment.

    horizon            steps per episode (144 = one day of 10-minute steps)
    move_amounts       bikes an agent can send per move, one action level each
    relocation_delay   steps an operator move takes; None = city.relocation_steps
    mode               'poisson' (sampled demand) or 'replay' (a real day's trips)
    pipeline_steps     P, the longest travel delay kept; None = city's maximum
    max_trips_per_step M, the served-trip slot budget; None = automatic
    obs_arrival_steps  how many upcoming steps of in-transit arrivals agents see
    obs_lookahead_minutes  window of the "expected demand ahead" observation
    obs_neighbors      include neighbours' inventory and expected demand
    obs_features       include the city's static features (normalised)
    obs_level          include today's demand level so far (`RebalanceEnv.demand_level`)
    """

    horizon: int = 144
    move_amounts: tuple = (5, 10)
    relocation_delay: int | None = 1
    mode: str = "poisson"
    pipeline_steps: int | None = None
    max_trips_per_step: int | None = None
    obs_arrival_steps: int = 3
    obs_lookahead_minutes: int = 60
    obs_neighbors: bool = True
    obs_features: bool = True
    obs_level: bool = False

    def __post_init__(self):
        if isinstance(self.move_amounts, (list, np.ndarray)):
            object.__setattr__(self, "move_amounts", tuple(int(a) for a in self.move_amounts))
        _check(is_int(self.horizon) and self.horizon >= 1, "horizon",
               f"must be a positive integer, got {self.horizon!r}")
        _check(isinstance(self.move_amounts, tuple) and len(self.move_amounts) >= 1
               and all(is_int(a) and a >= 1 for a in self.move_amounts),
               "move_amounts", f"must be a non-empty tuple of positive integers, got {self.move_amounts!r}")
        _check(self.relocation_delay is None or (is_int(self.relocation_delay) and self.relocation_delay >= 1),
               "relocation_delay", f"must be None or an integer >= 1, got {self.relocation_delay!r}")
        _check(self.mode in MODES, "mode", f"must be one of {MODES}, got {self.mode!r}")
        _check(self.pipeline_steps is None or (is_int(self.pipeline_steps) and self.pipeline_steps >= 1),
               "pipeline_steps", f"must be None or an integer >= 1, got {self.pipeline_steps!r}")
        if self.pipeline_steps is not None and self.relocation_delay is not None:
            _check(self.pipeline_steps >= self.relocation_delay, "pipeline_steps",
                   f"({self.pipeline_steps}) must be >= relocation_delay ({self.relocation_delay})")
        _check(self.max_trips_per_step is None or (is_int(self.max_trips_per_step) and self.max_trips_per_step >= 1),
               "max_trips_per_step", f"must be None or an integer >= 1, got {self.max_trips_per_step!r}")
        _check(is_int(self.obs_arrival_steps) and self.obs_arrival_steps >= 0, "obs_arrival_steps",
               f"must be an integer >= 0, got {self.obs_arrival_steps!r}")
        _check(is_int(self.obs_lookahead_minutes) and self.obs_lookahead_minutes >= 1, "obs_lookahead_minutes",
               f"must be a positive integer, got {self.obs_lookahead_minutes!r}")
        _check(isinstance(self.obs_neighbors, bool), "obs_neighbors", f"must be a bool, got {self.obs_neighbors!r}")
        _check(isinstance(self.obs_features, bool), "obs_features", f"must be a bool, got {self.obs_features!r}")
        _check(isinstance(self.obs_level, bool), "obs_level", f"must be a bool, got {self.obs_level!r}")


def _check(ok: bool, field: str, problem: str, owner: str = "RebalanceConfig") -> None:
    if not ok:
        raise ValueError(f"{owner}.{field}: {problem}")


REWARD_SHARING = ("own", "neighbors", "team")
CREDIT_MODELS = ("mean", "poisson")
STAY_BIAS = 2.0


@dataclass(frozen=True)
class RebalanceShaping:
    """How region agents' rewards become learning rewards (static; see `learning_reward`).

    reward_sharing  'team' (mean over all real regions: fully cooperative),
                    'neighbors' (mean over self and grid neighbours) or 'own'
    credit_window   steps ahead over which move credit counts expected shortfall
    credit_model    'mean' (expected shortfall) or 'poisson' (its expectation
                    under Poisson departures); see `RebalanceEnv.move_credit`
    credit_level    scale the credit's expected departures by today's demand level so
                    far (`RebalanceEnv.demand_level`), as MPC scales its forecast
    The credit's weight is the traced coefficient `coefs['move_credit']`.
    """

    reward_sharing: str = "team"
    credit_window: int = 6
    credit_model: str = "poisson"
    credit_level: bool = False

    def __post_init__(self):
        _check(self.reward_sharing in REWARD_SHARING, "reward_sharing",
               f"must be one of {', '.join(REWARD_SHARING)}, got {self.reward_sharing!r}", "RebalanceShaping")
        _check(is_int(self.credit_window) and self.credit_window >= 1, "credit_window",
               f"must be an integer >= 1, got {self.credit_window!r}", "RebalanceShaping")
        _check(self.credit_model in CREDIT_MODELS, "credit_model",
               f"must be one of {', '.join(CREDIT_MODELS)}, got {self.credit_model!r}", "RebalanceShaping")


def share_rewards(reward, city, how: str):
    """Credit assignment: an agent's learning reward is its own ('own'), the mean
    over itself and its grid neighbours ('neighbors': a region that sends bikes
    is credited with what its neighbours then serve), or the mean over all real
    agents ('team', fully cooperative). Padded agents get 0."""
    mask = city.region_mask.astype(reward.dtype)
    reward = reward * mask
    if how == "own":
        return reward
    if how == "team":
        return jnp.broadcast_to((reward.sum(-1, keepdims=True) / jnp.maximum(mask.sum(), 1.0)), reward.shape) * mask
    if how == "neighbors":
        nbr = jnp.take(reward, city.neighbors, axis=-1) * city.neighbor_mask  # (..., R, K)
        count = 1.0 + city.neighbor_mask.sum(-1)
        return (reward + nbr.sum(-1)) / count * mask
    raise ValueError(f"reward_sharing must be one of {REWARD_SHARING}, got {how!r}")


# ----------------------------------------------------------------------- pytrees
@struct.dataclass
class ReplayWindows:
    """Per replay day `d` and step of day `t`, the trips departing then, padded to M.

    origin, dest, lag, rank (D, T, M) int32: lag = travel steps clipped to P;
        rank = position of the trip among the same (step, origin) trips.
    valid, clipped (D, T, M) bool: a real trip; its travel time exceeded P.
    demand (D, T, R) int32: all trips departing (the demand);
    kept   (D, T, R) int32: those that fit in the M slots (the rest are truncated).
    """

    origin: jax.Array
    dest: jax.Array
    lag: jax.Array
    rank: jax.Array
    valid: jax.Array
    clipped: jax.Array
    demand: jax.Array
    kept: jax.Array

    @property
    def num_days(self) -> int:
        return int(self.demand.shape[-3])


@struct.dataclass
class RebalanceParams:
    """Everything a step reads about the world; leaves can be traced and vmapped.

    city            the City
    alpha, beta     reward weights of unserved demand and moved bikes (scalars)
    demand_scale    multiplier on `city.demand_rate` in Poisson mode (scalar)
    demand_levels   (N,) float32 per-episode demand levels in Poisson mode: each
                    reset draws one (stored as `state.day`) and the step's rates are
                    `demand_scale * level * city.demand_rate`. The operator's view
                    (observations, greedy, move credit) sees only `demand_scale`,
                    as a real operator does not know how busy today will be.
    dest_keep       (H, R, R) uint32 alias-method thresholds per time bucket, origin
                    and column j: a slot word w picks column j = w % R and keeps
                    destination j when w // R < dest_keep, else takes dest_alias
    dest_alias      (H, R, R) int32 the alias destination of each column
    move_lag        (R, K) int32 steps a relocation toward direction k takes
    nearest         (R, R-1) int32 other regions by distance (ties by index)
    demand_ahead    (T, R) float32 expected departures over the lookahead window
    features        (R, F) float32 city features standardised over real regions
    inv_capacity    (R,) float32 1 / docks (0 for padding regions)
    replay          ReplayWindows (mode 'replay') or None
    pipeline_steps  P (static)        max_trips  M (static)
    """

    city: City
    alpha: jax.Array
    beta: jax.Array
    demand_scale: jax.Array
    dest_keep: jax.Array
    dest_alias: jax.Array
    move_lag: jax.Array
    nearest: jax.Array
    demand_ahead: jax.Array
    features: jax.Array
    inv_capacity: jax.Array
    demand_levels: jax.Array | None = None
    replay: ReplayWindows | None = None
    pipeline_steps: int = struct.field(pytree_node=False, default=1)
    max_trips: int = struct.field(pytree_node=False, default=1)


@struct.dataclass
class RebalanceMetrics:
    """Episode totals over all agents (int32 counts, float32 reward)."""

    served: jax.Array
    demand: jax.Array
    unserved: jax.Array
    relocated: jax.Array
    overflow: jax.Array
    over_capacity: jax.Array
    truncated: jax.Array
    clipped_travel: jax.Array
    invalid_action: jax.Array
    reward: jax.Array
    steps: jax.Array

    @classmethod
    def zeros(cls) -> "RebalanceMetrics":
        z = jnp.zeros((), jnp.int32)
        return cls(served=z, demand=z, unserved=z, relocated=z, overflow=z, over_capacity=z, truncated=z,
                   clipped_travel=z, invalid_action=z, reward=jnp.zeros((), jnp.float32), steps=z)

    @property
    def fulfilled_service_ratio(self) -> jax.Array:
        """Served / demanded trips (1 when nothing was demanded)."""
        return jnp.where(self.demand > 0, self.served / jnp.maximum(self.demand, 1), 1.0)


@struct.dataclass
class RebalanceState:
    """inventory (R,) docked bikes; riding / relocating (P, R) bikes arriving at
    region r in i + 1 steps; t step of episode; day replay day; last_demand (R,)."""

    inventory: jax.Array
    riding: jax.Array
    relocating: jax.Array
    t: jax.Array
    day: jax.Array
    last_demand: jax.Array
    metrics: RebalanceMetrics


@struct.dataclass
class RebalanceExogenous:
    """The randomness of one Poisson step, separated so two implementations can
    share it: demand counts per region and one uniform 32-bit word per
    served-trip slot (its destination, see `RebalanceParams.dest_keep`).
    Replay steps have no randomness (both fields are ignored there)."""

    demand: jax.Array  # (R,) int32
    dest_bits: jax.Array  # (M,) uint32


# ----------------------------------------------------------------------- helpers
def _take(values: jax.Array, index: jax.Array) -> jax.Array:
    """Gather with indices the caller guarantees in bounds (no clamping code)."""
    return values.at[index].get(mode="promise_in_bounds", wrap_negative_indices=False)


def _scatter_add(values: jax.Array, index: jax.Array, updates: jax.Array) -> jax.Array:
    """`values.at[index].add(updates)` with indices the caller guarantees in bounds."""
    return values.at[index].add(updates, mode="promise_in_bounds", wrap_negative_indices=False)


def _shift(pipeline: jax.Array) -> jax.Array:
    """Advance a (P, R) pipeline one step: row i becomes row i - 1, last row empty."""
    return jnp.concatenate([pipeline[1:], jnp.zeros_like(pipeline[:1])], axis=0)


def alias_pick(keep_flat: jax.Array, alias_flat: jax.Array, row_start: jax.Array, bits: jax.Array,
               row_len: int) -> jax.Array:
    """Walker alias draw per lane from its table row: column `bits % R`, kept
    when `bits // R` is below the column's threshold, else its alias.
    Integer-only, so the NumPy reference reproduces it bit for bit."""
    n = jnp.uint32(row_len)
    column = (bits % n).astype(jnp.int32)
    entry = row_start + column
    keep = (bits // n) < _take(keep_flat, entry)
    return jnp.where(keep, column, _take(alias_flat, entry))


# ----------------------------------------------------------------------- env
class RebalanceEnv(Environment):
    """Region agents relocate bikes between neighbouring cells; see the module doc
    and `CONTRACT.md`. All methods are pure and jit/vmap-safe
    except `make_params`, which runs NumPy once per city."""

    agent_name = "region"

    def __init__(self, config: RebalanceConfig | None = None, shaping: RebalanceShaping | None = None):
        self.config = config if config is not None else RebalanceConfig()
        self.shaping = shaping if shaping is not None else RebalanceShaping()
        self._amounts = np.asarray(self.config.move_amounts, dtype=np.int32)

    def __repr__(self) -> str:
        return f"RebalanceEnv({self.config}, {self.shaping})"

    @property
    def episode_length(self) -> int:
        return self.config.horizon

    # ------------------------------------------------------------ sizes, specs
    def num_actions(self, params: RebalanceParams) -> int:
        """1 (stay) + directions x move levels (the direction count is the city's)."""
        return 1 + params.city.num_directions * len(self.config.move_amounts)

    def obs_dim(self, params: RebalanceParams) -> int:
        cfg, city = self.config, params.city
        dim = 2 + 4 + cfg.obs_arrival_steps + 1
        if cfg.obs_neighbors:
            dim += 3 * city.num_directions
        if cfg.obs_features:
            dim += int(city.features.shape[-1])
        return dim + int(cfg.obs_level)

    def global_state_dim(self, params: RebalanceParams) -> int:
        return params.city.num_regions * (4 + self.config.obs_arrival_steps) + 3 + int(self.config.obs_level)

    def draws_per_step(self, params: RebalanceParams) -> int:
        """Random numbers one city-step consumes (Poisson: R demand + M slots)."""
        if self.config.mode == "replay":
            return 0
        return params.city.num_regions + params.max_trips

    def observation_spec(self, params) -> Spec:
        return Spec((params.city.num_regions, self.obs_dim(params)), jnp.float32)

    def action_spec(self, params) -> Spec:
        return Spec((params.city.num_regions,), jnp.int32, self.num_actions(params))

    def agents(self, params: RebalanceParams) -> Agents:
        return Agents.discrete(params.city.region_mask, self.num_actions(params), self._valid_actions(params),
                               self._stay_prior(params))

    def _valid_actions(self, params: RebalanceParams) -> jax.Array:
        """(R, 1 + K*L) bool: stay always; a move where the neighbour exists."""
        city = params.city
        moves = jnp.repeat(jnp.asarray(city.neighbor_mask), len(self.config.move_amounts), axis=-1)
        stay = jnp.ones(moves.shape[:-1] + (1,), bool)
        return jnp.concatenate([stay, moves], axis=-1)

    def _stay_prior(self, params: RebalanceParams) -> jax.Array:
        """A fixed prior toward action 0 (stay). With 1 + K*L actions a uniform
        start moves bikes at almost every step (a random operator: more
        relocation and overflow than doing nothing); the prior makes the initial
        policy stay with probability ~1/2, so exploration starts near the no-op
        operator and learning adds moves where they pay."""
        return jnp.zeros((self.num_actions(params),), jnp.float32).at[0].set(STAY_BIAS)

    # ------------------------------------------------------------ learning signals and metrics
    def learning_reward(self, state, action, reward, info, params: RebalanceParams, coefs: dict) -> jax.Array:
        """The env reward shared per `shaping.reward_sharing`, plus
        `coefs['move_credit']` x each agent's own-move credit (`move_credit`:
        the trips its move is expected to save, valued as reward, minus its cost).

        Why the credit: under the team reward an agent's own move is 1/R of a
        noisy signal that arrives hours later, and under local rewards a sender
        only sees its own loss; the credit tells each agent at once what its move did."""
        city = params.city
        learn = share_rewards(reward, city, self.shaping.reward_sharing)
        credit = self.move_credit(state, action, info["relocated"], params, self.shaping.credit_window,
                                  self.shaping.credit_model, self.shaping.credit_level)
        return learn + coefs.get("move_credit", 0.0) * credit * city.region_mask

    def step_stats(self, info, reward, params: RebalanceParams) -> dict:
        """Trips served and demanded, bikes relocated and overflowed, team reward
        (summed over every env and region of the batch)."""
        return dict(served=info["served"].sum(), demand=info["demand"].sum(), relocated=info["relocated"].sum(),
                    overflow=info["overflow"].sum(), reward=(reward * params.city.region_mask).sum())

    def training_metrics(self, sums: dict, num_envs: int) -> dict:
        return dict(service_ratio=sums["served"] / jnp.maximum(sums["demand"], 1.0),
                    relocated=sums["relocated"] / num_envs, overflow=sums["overflow"] / num_envs)

    def episode_metrics(self, state: RebalanceState, params: RebalanceParams) -> dict:
        """The episode metrics of the contract: service_ratio, served, demand,
        rebalanced, relocation_cost (= beta x rebalanced), overflow, plus
        over_capacity, truncated, invalid_action and reward."""
        m = state.metrics
        return {"service_ratio": m.fulfilled_service_ratio, "served": m.served, "demand": m.demand,
                "rebalanced": m.relocated, "relocation_cost": params.beta * m.relocated, "overflow": m.overflow,
                "over_capacity": m.over_capacity, "truncated": m.truncated, "invalid_action": m.invalid_action,
                "reward": m.reward}

    # ------------------------------------------------------------ params
    def make_params(self, city: City, days=None, alpha: float = 0.5, beta: float = 0.1,
                    demand_scale: float = 1.0, demand_levels=None) -> RebalanceParams:
        """Precompute (NumPy, outside jit) every table a step needs for `city`.

        `days`: the DayTrips to replay (a sequence, a mapping date -> DayTrips or
        one DayTrips); required in mode 'replay', refused in mode 'poisson'.
        Automatic M uses this `demand_scale`: when sweeping demand_scale inside
        a batch, build the params with the largest one. `demand_levels`
        (Poisson mode): the per-episode levels each reset draws from (default: 1).
        """
        cfg = self.config
        if not isinstance(city, City):
            raise TypeError(f"make_params: city must be a jaxmob City, got {type(city).__name__}")
        for name, value in (("alpha", alpha), ("beta", beta), ("demand_scale", demand_scale)):
            if isinstance(value, (int, float, np.number)) and not np.isfinite(value):
                raise ValueError(f"make_params: {name} must be finite, got {value}")
        if isinstance(demand_scale, (int, float, np.number)) and demand_scale < 0:
            raise ValueError(f"make_params: demand_scale must be >= 0, got {demand_scale}")
        day_list = _day_list(days, cfg.mode, city)
        levels = np.ones(1) if demand_levels is None else np.asarray(demand_levels, np.float64).reshape(-1)
        if levels.size == 0 or not np.all(np.isfinite(levels)) or np.any(levels < 0):
            raise ValueError(f"make_params: demand_levels must be a non-empty list of finite values >= 0, got {levels}")
        if levels.size > 1 and cfg.mode != "poisson":
            raise ValueError("make_params: demand_levels apply only in Poisson mode (replay days have their own level)")

        R, K, T = city.num_regions, city.num_directions, city.steps_per_day
        real = np.asarray(city.region_mask)
        nbr = np.asarray(city.neighbors)
        nbr_mask = np.asarray(city.neighbor_mask)
        if cfg.relocation_delay is None:
            move_steps = np.asarray(city.relocation_steps)[np.arange(R)[:, None], nbr]
        else:
            move_steps = np.full((R, K), cfg.relocation_delay, np.int32)
        longest_move = int(move_steps[nbr_mask].max()) if nbr_mask.any() else 1
        P = cfg.pipeline_steps
        if P is None:
            P = default_pipeline_steps(city, cfg.relocation_delay)
        elif P < longest_move:
            raise ValueError(f"RebalanceConfig.pipeline_steps: ({P}) is shorter than the longest relocation "
                             f"({longest_move} steps) of city {city.name!r}")

        M = cfg.max_trips_per_step
        if M is None:
            M = default_max_trips(city, day_list, float(np.max(np.asarray(demand_scale)) * levels.max()), cfg.mode)
        replay = _replay_windows(day_list, R, T, P, M) if cfg.mode == "replay" else None
        keep, alias = alias_tables(np.asarray(city.od_prob))

        f32 = lambda x: jnp.asarray(x, jnp.float32)
        return RebalanceParams(
            city=jax.tree.map(jnp.asarray, city),
            alpha=f32(alpha), beta=f32(beta), demand_scale=f32(demand_scale),
            dest_keep=jnp.asarray(keep), dest_alias=jnp.asarray(alias),
            move_lag=jnp.asarray(np.where(nbr_mask, move_steps, 1).astype(np.int32)),
            nearest=jnp.asarray(_nearest_order(np.asarray(city.xy_km))),
            demand_ahead=jnp.asarray(_demand_ahead(np.asarray(city.demand_rate), cfg.obs_lookahead_minutes,
                                                   city.step_minutes)),
            features=jnp.asarray(_standardise(np.asarray(city.features), real)),
            inv_capacity=jnp.asarray(np.where(real, 1.0 / np.maximum(np.asarray(city.capacity), 1), 0.0)
                                     .astype(np.float32)),
            demand_levels=jnp.asarray(levels, jnp.float32), replay=replay, pipeline_steps=int(P), max_trips=int(M),
        )

    # ------------------------------------------------------------ reset
    def initial_state(self, params: RebalanceParams, day=0) -> RebalanceState:
        """The start-of-episode state (bikes at `city.init_inventory`) for replay `day`."""
        city = params.city
        R, P = city.num_regions, params.pipeline_steps
        return RebalanceState(
            inventory=jnp.asarray(city.init_inventory, jnp.int32),
            riding=jnp.zeros((P, R), jnp.int32), relocating=jnp.zeros((P, R), jnp.int32),
            t=jnp.zeros((), jnp.int32), day=jnp.asarray(day, jnp.int32),
            last_demand=jnp.zeros((R,), jnp.int32), metrics=RebalanceMetrics.zeros(),
        )

    def reset(self, key: jax.Array, params: RebalanceParams):
        """Start an episode; in replay mode on a uniformly drawn day, in Poisson mode
        at a uniformly drawn demand level (when there are several)."""
        day = 0
        if self.config.mode == "replay":
            day = jax.random.randint(key, (), 0, params.replay.num_days, dtype=jnp.int32)
        elif params.demand_levels is not None and params.demand_levels.shape[-1] > 1:
            day = jax.random.randint(key, (), 0, params.demand_levels.shape[-1], dtype=jnp.int32)
        state = self.initial_state(params, day)
        return self.observe(state, params), state

    # ------------------------------------------------------------ step
    def sample_exogenous(self, key: jax.Array, state: RebalanceState, params: RebalanceParams) -> RebalanceExogenous:
        """This step's random draws, R + M 32-bit words: R -> Poisson demand, M slot words."""
        city = params.city
        R, M = city.num_regions, params.max_trips
        if self.config.mode == "replay":
            return RebalanceExogenous(demand=jnp.zeros((R,), jnp.int32), dest_bits=jnp.zeros((M,), jnp.uint32))
        bits = random_words(key, R + M)
        rate = params.demand_scale * _take(city.demand_rate, state.t % city.steps_per_day)
        if params.demand_levels is not None and params.demand_levels.shape[-1] > 1:
            rate = rate * params.demand_levels[state.day]
        return RebalanceExogenous(demand=poisson_by_inversion(uniform_from_bits(bits[:R]), rate), dest_bits=bits[R:])

    def step(self, key: jax.Array, state: RebalanceState, action: jax.Array, params: RebalanceParams):
        return self.step_with(self.sample_exogenous(key, state, params), state, action, params)

    def step_with(self, exog: RebalanceExogenous, state: RebalanceState, action: jax.Array,
                  params: RebalanceParams):
        """The deterministic step given this step's draws (see the contract's order)."""
        city = params.city
        R, P = city.num_regions, params.pipeline_steps
        capacity = jnp.asarray(city.capacity, jnp.int32)
        inventory = state.inventory

        # 1. demand: served trips leave and ride towards their destinations
        if self.config.mode == "replay":
            demand, served, truncated, ride_index, ride_count, clipped = self._replay_trips(state, inventory, params)
        else:
            demand, served, truncated, ride_index, ride_count, clipped = self._poisson_trips(
                exog, state, inventory, params)
        inventory = inventory - served
        riding = _scatter_add(state.riding.reshape(P * R), ride_index, ride_count)

        # 2. relocation from what is left
        moved, move_index, invalid = self._relocation(action, inventory, params)
        inventory = inventory - moved
        relocating = _scatter_add(state.relocating.reshape(P * R), move_index, moved)

        # 3. arrivals, docking and overflow
        riding, relocating = riding.reshape(P, R), relocating.reshape(P, R)
        arrivals = riding[0] + relocating[0]
        riding, relocating = _shift(riding), _shift(relocating)
        docked = jnp.minimum(arrivals, jnp.maximum(capacity - inventory, 0))
        inventory = inventory + docked
        excess = arrivals - docked
        target, found = _nearest_free(inventory < capacity, excess > 0, params.nearest)
        overflow = jnp.where(found, excess, 0)
        over_capacity = excess - overflow
        inventory = inventory + over_capacity
        overflow_travel = _take(jnp.asarray(city.travel_steps).reshape(R * R), jnp.arange(R) * R + target)
        riding = _scatter_add(riding.reshape(P * R), (jnp.minimum(overflow_travel, P) - 1) * R + target,
                              overflow).reshape(P, R)
        clipped = clipped + jnp.sum((overflow > 0) & (overflow_travel > P))

        # 4. time, reward, bookkeeping
        t = state.t + 1
        unserved = demand - served
        reward = (served - params.alpha * unserved - params.beta * moved).astype(jnp.float32)
        info = {"served": served, "demand": demand, "unserved": unserved, "relocated": moved,
                "overflow": overflow, "over_capacity": over_capacity, "invalid_action": invalid.astype(jnp.int32),
                "truncated": truncated, "clipped_travel": clipped.astype(jnp.int32)}
        metrics = accumulate(state.metrics, RebalanceMetrics(
            served=served.sum(), demand=demand.sum(), unserved=unserved.sum(), relocated=moved.sum(),
            overflow=overflow.sum(), over_capacity=over_capacity.sum(), truncated=truncated.sum(),
            clipped_travel=clipped, invalid_action=invalid.sum(), reward=reward.sum(), steps=1))
        next_state = RebalanceState(inventory=inventory, riding=riding, relocating=relocating, t=t, day=state.day,
                                    last_demand=demand, metrics=metrics)
        done = t >= self.config.horizon
        return self.observe(next_state, params), next_state, reward, done, info

    def _poisson_trips(self, exog, state, inventory, params):
        """Serve sampled demand: slots [start_r, start_r + served_r) belong to origin r."""
        city = params.city
        R, M, T = city.num_regions, params.max_trips, city.steps_per_day
        demand = exog.demand
        wanted = jnp.minimum(inventory, demand)
        ends = jnp.cumsum(wanted)
        served = jnp.clip(M - (ends - wanted), 0, wanted)
        truncated = wanted - served
        marks = _scatter_add(jnp.zeros((M + 1,), jnp.int32), jnp.minimum(ends, M), jnp.ones((R,), jnp.int32))
        origin = jnp.minimum(jnp.cumsum(marks[:M]), R - 1)  # slot m: #regions whose slots end at or before m
        valid = jnp.arange(M) < jnp.minimum(ends[-1], M)
        bucket = (state.t % T) // city.od_bucket_steps
        dest = alias_pick(params.dest_keep.reshape(-1), params.dest_alias.reshape(-1), (bucket * R + origin) * R,
                          exog.dest_bits, R)
        travel = _take(jnp.asarray(city.travel_steps).reshape(R * R), origin * R + dest)
        clipped = jnp.sum(valid & (travel > params.pipeline_steps))
        lag = jnp.minimum(travel, params.pipeline_steps)
        return demand, served, truncated, (lag - 1) * R + dest, valid.astype(jnp.int32), clipped

    def _replay_trips(self, state, inventory, params):
        """Serve the day's trips of this step: the first `served[r]` of each origin."""
        rp, T = params.replay, params.city.steps_per_day
        R = params.city.num_regions
        row = lambda table: table[state.day, state.t % T]
        origin, dest, lag, rank = row(rp.origin), row(rp.dest), row(rp.lag), row(rp.rank)
        demand = row(rp.demand)
        wanted = jnp.minimum(inventory, demand)
        served = jnp.minimum(wanted, row(rp.kept))
        truncated = wanted - served
        rides = row(rp.valid) & (rank < _take(served, origin))
        clipped = jnp.sum(rides & row(rp.clipped))
        return demand, served, truncated, (lag - 1) * R + dest, rides.astype(jnp.int32), clipped

    def _relocation(self, action, inventory, params):
        """Bikes each agent moves, where they go in the flat (P*R) pipeline, invalid flags."""
        city = params.city
        R, L = city.num_regions, len(self.config.move_amounts)
        action = jnp.asarray(action, jnp.int32)
        in_range = (action >= 0) & (action < self.num_actions(params))
        move = jnp.where(in_range, action, 0) - 1
        direction, level = jnp.maximum(move, 0) // L, jnp.maximum(move, 0) % L
        rk = jnp.arange(R) * city.num_directions + direction
        has_neighbor = _take(jnp.asarray(city.neighbor_mask).reshape(-1), rk)
        moving = (move >= 0) & has_neighbor
        invalid = ~in_range | ((move >= 0) & ~has_neighbor)
        amount = _take(jnp.asarray(self._amounts), level)
        moved = jnp.where(moving, jnp.minimum(amount, inventory), 0)
        target = _take(jnp.asarray(city.neighbors).reshape(-1), rk)
        lag = _take(params.move_lag.reshape(-1), rk)
        return moved, (lag - 1) * R + target, invalid

    # ------------------------------------------------------------ operator's view
    def supply_and_demand(self, state: RebalanceState, params: RebalanceParams, window: int):
        """(R,) float32 pair over the next `window` steps: bikes a region will have
        if nothing else moves (docked + docking within the window) and its
        expected departures (`demand_scale * city.demand_rate`, wrapping at
        midnight). Only what a real operator knows, never the replayed trips."""
        city = params.city
        steps = (state.t + jnp.arange(window)) % city.steps_per_day
        expected = params.demand_scale * _take(city.demand_rate, steps).sum(axis=0)
        arrivals = (state.riding + state.relocating)[:window].sum(axis=0)
        return state.inventory.astype(jnp.float32) + arrivals, expected

    def expected_balance(self, state: RebalanceState, params: RebalanceParams, window: int) -> jax.Array:
        """(R,) supply - expected departures over `window` steps (`supply_and_demand`);
        negative = the shortfall a greedy operator would fill."""
        supply, expected = self.supply_and_demand(state, params, window)
        return supply - expected

    def demand_level(self, state: RebalanceState, params: RebalanceParams) -> jax.Array:
        """() float32 how busy today is so far: departures requested since the start of the
        episode over those the rates expect (`demand_scale * city.demand_rate`), both plus an
        hour of average demand, so the level starts at 1 and follows the day. What an
        operator learns by watching; real days run well above the estimated rates."""
        city = params.city
        per_step = params.demand_scale * jnp.asarray(city.demand_rate).sum(axis=1)  # (T,)
        T = city.steps_per_day
        cum = jnp.concatenate([jnp.zeros(1, per_step.dtype), jnp.cumsum(per_step)])
        expected = (state.t // T) * cum[T] + cum[state.t % T]
        prior = 6.0 * per_step.mean()
        return (state.metrics.demand.astype(jnp.float32) + prior) / (expected + prior)

    def move_credit(self, state: RebalanceState, action: jax.Array, moved: jax.Array, params: RebalanceParams,
                    window: int, model: str, level: bool = False) -> jax.Array:
        """(R,) float32 the reward-equivalent of each agent's own move:
        (1 + alpha) x the trips it is expected to save - beta x bikes moved.

        Trips lost in a region over the window: `model='mean'` the shortfall
        max(expected - supply, 0); `'poisson'` its expectation when departures
        are Poisson, E[(D - supply)+], which also values a safety stock.
        The saving is a difference: the loss of the sender and its target with
        every move made, against the same with this agent's move undone and
        everyone else's kept (two senders feeding one deficit share the credit,
        overfilling it earns nothing). `state` is the state the step started
        from, `moved` the bikes each agent actually sent (`info['relocated']`);
        `level` scales the expected departures by today's demand level so far."""
        city = params.city
        R, L = city.num_regions, len(self.config.move_amounts)
        direction = jnp.maximum(jnp.asarray(action, jnp.int32) - 1, 0) // L
        target = _take(jnp.asarray(city.neighbors).reshape(-1), jnp.arange(R) * city.num_directions
                       + jnp.minimum(direction, city.num_directions - 1))
        moved = moved.astype(jnp.float32)
        supply, expected = self.supply_and_demand(state, params, window)
        if level:
            expected = expected * self.demand_level(state, params)
        after = _scatter_add(supply - moved, target, moved)
        losses = {"mean": lambda s, lam: jnp.maximum(lam - s, 0.0), "poisson": expected_poisson_excess}
        if model not in losses:
            raise ValueError(f"move_credit: model must be one of {sorted(losses)}, got {model!r}")
        loss = losses[model]
        at_target, lam_target = _take(after, target), _take(expected, target)
        undone = loss(after + moved, expected) + loss(at_target - moved, lam_target)
        done = loss(after, expected) + loss(at_target, lam_target)
        saved = jnp.where(moved > 0, undone - done, 0.0)
        return (1.0 + params.alpha) * saved - params.beta * moved

    # ------------------------------------------------------------ observations
    def _arrivals_ahead(self, state: RebalanceState, params) -> jax.Array:
        """(A, R) bikes docking in each of the next A steps (zeros past P)."""
        A, P = self.config.obs_arrival_steps, params.pipeline_steps
        soon = (state.riding + state.relocating)[:A]
        if A > P:
            soon = jnp.pad(soon, ((0, A - P), (0, 0)))
        return soon

    def _region_quantities(self, state, params):
        """Per-region quantities (fractions of each region's docks) shared by obs and global state."""
        city = params.city
        t_day = state.t % city.steps_per_day
        scale = params.inv_capacity
        inventory = state.inventory * scale
        last = state.last_demand * scale
        rate_now = params.demand_scale * _take(city.demand_rate, t_day) * scale
        rate_ahead = params.demand_scale * _take(params.demand_ahead, t_day) * scale
        arrivals = self._arrivals_ahead(state, params) * scale
        angle = 2.0 * jnp.pi * t_day.astype(jnp.float32) / city.steps_per_day
        clock = jnp.stack([jnp.sin(angle), jnp.cos(angle)])
        return inventory, last, rate_now, rate_ahead, arrivals, clock

    def observe(self, state: RebalanceState, params: RebalanceParams) -> jax.Array:
        """(R, obs_dim) float32 per agent, bike counts as fractions of its docks:
        [sin, cos of time of day, inventory, last step's demand, expected demand
        now, expected demand over the lookahead, arrivals in each of the next A
        steps, (neighbours' inventory, expected demand now and expected balance
        over the lookahead = inventory + arrivals - expected demand: the deficit a
        greedy operator would fill; 0 where absent),
        (standardised city features), (today's demand level - 1), region mask]; padding agents' rows are 0."""
        city = params.city
        R = city.num_regions
        inventory, last, rate_now, rate_ahead, arrivals, clock = self._region_quantities(state, params)
        mask = jnp.asarray(city.region_mask).astype(jnp.float32)
        columns = [jnp.broadcast_to(clock, (R, 2)), inventory[:, None], last[:, None], rate_now[:, None],
                   rate_ahead[:, None], arrivals.T]
        if self.config.obs_neighbors:
            nbr, nbr_mask = jnp.asarray(city.neighbors), jnp.asarray(city.neighbor_mask)
            balance = inventory + arrivals.sum(0) - rate_ahead
            columns += [jnp.where(nbr_mask, inventory[nbr], 0.0), jnp.where(nbr_mask, rate_now[nbr], 0.0),
                        jnp.where(nbr_mask, balance[nbr], 0.0)]
        if self.config.obs_features:
            columns.append(params.features)
        if self.config.obs_level:
            columns.append(jnp.broadcast_to(self.demand_level(state, params) - 1.0, (R, 1)))
        obs = jnp.concatenate(columns, axis=-1) * mask[:, None]
        return jnp.concatenate([obs, mask[:, None]], axis=-1).astype(jnp.float32)

    def global_state(self, state: RebalanceState, params: RebalanceParams) -> jax.Array:
        """All regions' inventory, last and expected demand, upcoming arrivals, plus clock and progress."""
        inventory, last, rate_now, rate_ahead, arrivals, clock = self._region_quantities(state, params)
        progress = (state.t.astype(jnp.float32) / self.config.horizon)[None]
        level = [self.demand_level(state, params)[None] - 1.0] if self.config.obs_level else []
        return jnp.concatenate([inventory, last, rate_now, rate_ahead, arrivals.reshape(-1), clock, progress, *level]
                               ).astype(jnp.float32)


def expected_poisson_excess(supply: jax.Array, lam: jax.Array) -> jax.Array:
    """E[(D - supply)+] for D ~ Poisson(lam) and integer supply >= 0: the trips
    expected to find no bike. Uses sum_{k>s} k p(k) = lam P(D >= s), so it is
    lam P(D >= s) - s P(D >= s + 1), with P(D >= a) the regularised lower
    incomplete gamma function P(a, lam) (1 for a <= 0)."""
    supply = jnp.maximum(supply, 0.0)
    lam = jnp.maximum(lam, 0.0)
    at_least = lambda a: jnp.where(a > 0, jax.scipy.special.gammainc(jnp.maximum(a, 1.0), lam), 1.0)
    return jnp.maximum(lam * at_least(supply) - supply * at_least(supply + 1.0), 0.0)


# ----------------------------------------------------------------------- overflow search
def _nearest_free(free: jax.Array, need: jax.Array, nearest: jax.Array):
    """For each region that needs it, the nearest other region with a free dock.

    Walks the precomputed distance order one rank per round and stops as soon as
    every region with excess has a target, so a step without overflow costs one
    test and a typical one a few rounds of R gathers (not an R x R search).
    """
    R = free.shape[0]
    columns = nearest.shape[1]
    if columns == 0:  # a one-region city has nowhere to send excess
        return jnp.arange(R, dtype=jnp.int32), jnp.zeros((R,), bool)

    def searching(carry):
        rank, found, _ = carry
        return (rank < columns) & jnp.any(need & ~found)

    def next_rank(carry):
        rank, found, target = carry
        candidate = jax.lax.dynamic_index_in_dim(nearest, rank, axis=1, keepdims=False)
        hit = need & ~found & _take(free, candidate)
        return rank + 1, found | hit, jnp.where(hit, candidate, target)

    init = (jnp.zeros((), jnp.int32), jnp.zeros((R,), bool), jnp.arange(R, dtype=jnp.int32))
    _, found, target = jax.lax.while_loop(searching, next_rank, init)
    return target, found


# ----------------------------------------------------------------------- NumPy precomputation
def _day_list(days, mode: str, city: City) -> list:
    if mode == "poisson":
        if days is not None:
            raise ValueError("make_params: days are replayed only in mode='replay' (this env is mode='poisson')")
        return []
    if days is None:
        raise ValueError("make_params: mode='replay' needs days (a list of DayTrips)")
    if isinstance(days, DayTrips):
        days = [days]
    elif isinstance(days, Mapping):
        days = list(days.values())
    days = list(days)
    if not days:
        raise ValueError("make_params: days is empty; mode='replay' needs at least one DayTrips")
    for i, d in enumerate(days):
        if not isinstance(d, DayTrips):
            raise TypeError(f"make_params: days[{i}] must be a DayTrips, got {type(d).__name__}")
        if d.num_trips and (np.max(d.origin) >= city.num_regions or np.max(d.dest) >= city.num_regions):
            raise ValueError(f"make_params: days[{i}] ({d.date}) has region indices >= {city.num_regions}")
        if d.num_trips and np.max(d.depart_step) >= city.steps_per_day:
            raise ValueError(f"make_params: days[{i}] ({d.date}) departs after step {city.steps_per_day - 1}")
        if np.any(np.diff(np.asarray(d.depart_step)) < 0):
            raise ValueError(f"make_params: days[{i}] ({d.date}) is not ordered by departure; "
                             "build it with DayTrips.create")
    return days


def default_pipeline_steps(city: City, relocation_delay: int | None) -> int:
    """The default pipeline length P: the longest travel time between real regions
    or relocation toward a real neighbour, so nothing sampled is clipped."""
    real = np.asarray(city.region_mask, dtype=bool)
    nbr, ok = np.asarray(city.neighbors), np.asarray(city.neighbor_mask, dtype=bool)
    longest = int(np.asarray(city.travel_steps)[np.ix_(real, real)].max()) if real.any() else 1
    if relocation_delay is None:
        moves = np.asarray(city.relocation_steps)[np.arange(len(nbr))[:, None], nbr]
        longest_move = int(moves[ok].max()) if ok.any() else 1
    else:
        longest_move = int(relocation_delay) if ok.any() else 1
    return max(longest, longest_move, 1)


def default_max_trips(city: City, days: Sequence[DayTrips], demand_scale: float, mode: str) -> int:
    """Slots for served trips: in replay the busiest step of any day; in Poisson
    mode a far quantile of the busiest step's total demand, never above the fleet."""
    if mode == "replay":
        busiest = max((int(np.bincount(d.depart_step, minlength=1).max()) if d.num_trips else 0) for d in days)
        return max(busiest, 1)
    peak = demand_scale * float(np.asarray(city.demand_rate, np.float64).sum(axis=1).max())
    quantile = math.ceil(peak + 6.0 * math.sqrt(peak) + 8.0)
    return max(1, min(quantile, city.fleet_size))


def alias_tables(od_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker alias tables for every (bucket, origin) row of `od_prob`, all rows at once.

    Each of R columns holds probability mass 1/R: column j keeps destination j
    with probability keep[j] / Q (Q = 2**32 // R, the range of `word // R`) and
    gives the rest to alias[j]. Built by pairing the currently smallest and
    largest scaled masses (first index on ties), in float64, which the NumPy
    reference repeats row by row. Returns (keep uint32, alias int32).
    """
    od = np.asarray(od_prob, np.float64)
    shape, R = od.shape, od.shape[-1]
    rows = od.reshape(-1, R)
    total = rows.sum(axis=1, keepdims=True)
    scaled = np.where(total > 0, rows / np.where(total > 0, total, 1.0), 0.0) * R
    n = rows.shape[0]
    keep = np.ones((n, R))
    alias = np.tile(np.arange(R), (n, 1))
    active = np.ones((n, R), bool)
    at = np.arange(n)
    for _ in range(R - 1):
        small = np.argmin(np.where(active, scaled, np.inf), axis=1)
        large = np.argmax(np.where(active, scaled, -np.inf), axis=1)
        keep[at, small] = scaled[at, small]
        alias[at, small] = large
        active[at, small] = False
        scaled[at, large] -= 1.0 - scaled[at, small]
    keep = np.where(active, 1.0, keep)
    return alias_threshold(keep, R).reshape(shape), alias.astype(np.int32).reshape(shape)


def alias_threshold(keep_probability: np.ndarray, R: int) -> np.ndarray:
    """uint32 thresholds `round(clip(p, 0, 1) * Q)` with Q = 2**32 // R."""
    q = float(2**32 // R)
    return np.rint(np.clip(keep_probability, 0.0, 1.0) * q).astype(np.uint32)


def _nearest_order(xy_km: np.ndarray) -> np.ndarray:
    """(R, R-1) for each region the others sorted by distance, ties by index."""
    xy = np.asarray(xy_km, np.float64)
    R = xy.shape[0]
    dist = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    order = np.empty((R, max(R - 1, 0)), np.int32)
    idx = np.arange(R)
    for r in range(R):
        others = idx[idx != r]
        order[r] = others[np.lexsort((others, dist[r, others]))]
    return order


def _demand_ahead(rate: np.ndarray, minutes: int, step_minutes: int) -> np.ndarray:
    """(T, R) expected departures over the `minutes` starting at each step (wrapping at midnight)."""
    window = max(1, minutes // step_minutes)
    rate = np.asarray(rate, np.float64)
    total = sum(np.roll(rate, -s, axis=0) for s in range(window))
    return total.astype(np.float32)


def _standardise(features: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column over real regions; padding rows zero."""
    f = np.asarray(features, np.float64)
    if f.shape[1] == 0 or not real.any():
        return np.zeros(f.shape, np.float32)
    mean = f[real].mean(axis=0)
    std = f[real].std(axis=0)
    out = (f - mean) / np.where(std > 0, std, 1.0)
    return np.where(real[:, None], out, 0.0).astype(np.float32)


def _replay_windows(days: Sequence[DayTrips], R: int, T: int, P: int, M: int) -> ReplayWindows:
    """Stack each day's trips into per-step rows of M slots (NumPy, once)."""
    D = len(days)
    origin, dest, lag, rank = (np.zeros((D, T, M), np.int32) for _ in range(4))
    valid, clipped = np.zeros((D, T, M), bool), np.zeros((D, T, M), bool)
    demand, kept = np.zeros((D, T, R), np.int32), np.zeros((D, T, R), np.int32)
    for d, trips in enumerate(days):
        o, de = np.asarray(trips.origin, np.int64), np.asarray(trips.dest, np.int64)
        s, a = np.asarray(trips.depart_step, np.int64), np.asarray(trips.arrive_step, np.int64)
        n = len(o)
        if n == 0:
            continue
        # DayTrips are ordered by departure step: a trip's slot is its position within its step
        step_start = np.searchsorted(s, np.arange(T))
        slot = np.arange(n) - step_start[s]
        group = s * R + o
        by_group = np.argsort(group, kind="stable")
        group_start = np.searchsorted(group[by_group], group[by_group])
        trip_rank = np.empty(n, np.int64)
        trip_rank[by_group] = np.arange(n) - group_start
        np.add.at(demand[d], (s, o), 1)
        keep = slot < M
        np.add.at(kept[d], (s[keep], o[keep]), 1)
        tau = a - s
        sk, pk = s[keep], slot[keep]
        origin[d, sk, pk] = o[keep]
        dest[d, sk, pk] = de[keep]
        lag[d, sk, pk] = np.minimum(tau[keep], P)
        rank[d, sk, pk] = trip_rank[keep]
        valid[d, sk, pk] = True
        clipped[d, sk, pk] = tau[keep] > P
    lag[~valid] = 1
    return ReplayWindows(origin=jnp.asarray(origin), dest=jnp.asarray(dest), lag=jnp.asarray(lag),
                         rank=jnp.asarray(rank), valid=jnp.asarray(valid), clipped=jnp.asarray(clipped),
                         demand=jnp.asarray(demand), kept=jnp.asarray(kept))
