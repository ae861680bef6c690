"""Taxi dispatch and empty-vehicle repositioning where every taxi is an agent (TDEVR).

The city is a grid of hex cells with six neighbours. Each taxi is an agent
on an array axis (thousands of them, padded with a mask); an idle taxi stays
(action 0) or moves to one of its cell's six neighbours (actions 1..6, in
`HEX_DIRECTIONS` order). The step order, the matching rule, the reward and
the metrics are specified in `CONTRACT.md`; `reference.py` is a NumPy
implementation of the same step that matches this one exactly, given the same
exogenous draws (`sample_exogenous` then `step_with`).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ...core.env import Agents, Environment, Spec, accumulate, is_int

MODES = ("poisson", "replay")
NUM_ACTIONS = 7  # stay + 6 hex neighbours
LOCAL_FEATURES = 3  # idle taxis, waiting orders, expected orders next step (per cell)
MIXES = ("local", "global", "both", "served")


@dataclass(frozen=True)
class TaxiConfig:
    """Static settings of the taxi environment.

    horizon   steps per episode (144 x 10 min = one day)
    max_wait  steps an unmatched order waits before it expires (2 = 20 min)
    mode      'poisson' (orders drawn from the rates) or 'replay' (a day's real counts)
    reward    what a taxi is rewarded with: 'local' (the balance of its cell),
              'global' (the mean balance over cells), 'both' (their mean), or
              'served' (1 in the step a taxi is matched to an order: ORR's own count)
    """

    horizon: int = 144
    max_wait: int = 2
    mode: str = "poisson"
    reward: str = "both"

    def __post_init__(self):
        for name, ok, want in (("horizon", is_int(self.horizon) and self.horizon >= 1, "a positive integer"),
                               ("max_wait", is_int(self.max_wait) and self.max_wait >= 1, "an integer >= 1"),
                               ("mode", self.mode in MODES, f"one of {MODES}"),
                               ("reward", self.reward in MIXES, f"one of {MIXES}")):
            if not ok:
                raise ValueError(f"TaxiConfig.{name}: must be {want}, got {getattr(self, name)!r}")


@struct.dataclass
class TaxiParams:
    """Everything a step reads about the city and its fleet (arrays only)."""

    neighbors: jax.Array  # (C, 6) int32 neighbour cell per direction (itself where absent)
    neighbor_mask: jax.Array  # (C, 6) bool
    cell_mask: jax.Array  # (C,) bool, real cells
    travel_steps: jax.Array  # (C, C) int32 >= 1, trip duration
    fare: jax.Array  # (C, C) float32
    trip_km: jax.Array  # (C, C) float32
    move_km: jax.Array  # () float32, distance between neighbouring cell centres
    demand_rate: jax.Array  # (S, C) float32 expected orders per step (S steps per day)
    dest_cdf: jax.Array  # (24, C, C) float32 cumulative destination probabilities per hour and origin
    replay_orders: jax.Array  # (H, C) int32 orders per step of a replayed day (zeros in poisson mode)
    taxi_mask: jax.Array  # (N,) bool, real taxis
    init_cell: jax.Array  # (N,) int32
    demand_scale: jax.Array  # () float32 multiplies the rates (poisson mode)
    start_step: jax.Array  # () int32 step of day at which an episode starts (a city's demand window)

    @property
    def num_cells(self) -> int:
        return int(self.cell_mask.shape[-1])

    @property
    def num_taxis(self) -> int:
        return int(self.taxi_mask.shape[-1])


@struct.dataclass
class TaxiMetrics:
    """Episode totals (int32 counts, float32 money and kilometres)."""

    orders: jax.Array
    served: jax.Array
    expired: jax.Array
    moves: jax.Array
    invalid_moves: jax.Array
    revenue: jax.Array
    occupied_km: jax.Array
    balance: jax.Array  # sum over steps of the mean cell balance
    steps: jax.Array

    @classmethod
    def zeros(cls) -> "TaxiMetrics":
        z, f = jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32)
        return cls(orders=z, served=z, expired=z, moves=z, invalid_moves=z, revenue=f, occupied_km=f, balance=f,
                   steps=z)


@struct.dataclass
class TaxiState:
    cell: jax.Array  # (N,) int32 where the taxi is (a busy taxi: where its trip ends)
    busy: jax.Array  # (N,) int32 steps until the taxi is idle again (0: idle)
    waiting: jax.Array  # (C, W) int32 unmatched orders by age (0 = placed this step)
    t: jax.Array  # () int32
    metrics: TaxiMetrics


@struct.dataclass
class TaxiExogenous:
    """The randomness of one step: new orders per cell and one uniform per taxi
    (the destination of the order it may be matched to)."""

    new_orders: jax.Array  # (C,) int32
    dest_u: jax.Array  # (N,) float32 in [0, 1)


def rank_within(group: jax.Array, member: jax.Array, num_groups: int) -> jax.Array:
    """For each element, its rank (0, 1, ...) among the members of its group in
    index order; -1 for non-members. Sort-based, O(N log N)."""
    n = group.shape[0]
    key = jnp.where(member, group, num_groups)  # non-members sort last
    order = jnp.argsort(key, stable=True)
    sorted_key = key[order]
    first = jnp.searchsorted(sorted_key, sorted_key, side="left")
    rank_sorted = jnp.arange(n, dtype=jnp.int32) - first.astype(jnp.int32)
    rank = jnp.zeros((n,), jnp.int32).at[order].set(rank_sorted)
    return jnp.where(member, rank, -1)


def inverse_cdf(cdf: jax.Array, row: jax.Array, u: jax.Array) -> jax.Array:
    """For each i, the number of entries of the non-decreasing `cdf[row[i]]` that
    are <= u[i] (the category u[i] falls in), by binary search: log2(C) gathers
    per element instead of reading whole (N, C) rows."""
    C = cdf.shape[-1]
    lo = jnp.zeros(row.shape, jnp.int32)
    hi = jnp.full(row.shape, C, jnp.int32)
    for _ in range(int(np.ceil(np.log2(C + 1)))):
        mid = (lo + hi) // 2
        above = cdf[row, jnp.minimum(mid, C - 1)] > u
        lo, hi = jnp.where(above, lo, mid + 1), jnp.where(above, mid, hi)
    return lo


def take_oldest(waiting: jax.Array, served: jax.Array) -> jax.Array:
    """`waiting` (C, W) minus `served` (C,) orders taken oldest first."""
    older = jnp.cumsum(waiting[:, ::-1], axis=1)[:, ::-1] - waiting  # orders older than each age
    take = jnp.clip(served[:, None] - older, 0, waiting)
    return waiting - take


def balance(supply: jax.Array, demand: jax.Array) -> jax.Array:
    """min(S, D) / max(S, D) per cell: 1 when supply meets demand (or both are 0)."""
    high = jnp.maximum(supply, demand)
    return jnp.where(high > 0, jnp.minimum(supply, demand) / jnp.maximum(high, 1e-9), 1.0)


class TaxiEnv(Environment):
    """Every taxi an agent; see the module doc and `CONTRACT.md`."""

    agent_name = "taxi"

    def __init__(self, config: TaxiConfig | None = None):
        self.config = config if config is not None else TaxiConfig()

    def __repr__(self) -> str:
        return f"TaxiEnv({self.config})"

    @property
    def episode_length(self) -> int:
        return self.config.horizon

    # ------------------------------------------------------------ specs
    def obs_dim(self, params) -> int:
        return 7 * LOCAL_FEATURES + 3

    def observation_spec(self, params) -> Spec:
        return Spec((params.num_taxis, self.obs_dim(params)), jnp.float32)

    def action_spec(self, params) -> Spec:
        return Spec((params.num_taxis,), jnp.int32, NUM_ACTIONS)

    def agents(self, params) -> Agents:
        """Every taxi may take every action: where a taxi is changes every step, so a
        move toward a missing neighbour is allowed and counted as an invalid stay.
        Observation: own cell + 6 neighbours, 3 features each; state: every cell's 3."""
        return Agents.discrete(params.taxi_mask, NUM_ACTIONS,
                               tokens=dict(local_tokens=7, global_tokens=params.num_cells, token_dim=LOCAL_FEATURES))

    # ------------------------------------------------------------ reset
    def initial_state(self, params) -> TaxiState:
        W = self.config.max_wait
        return TaxiState(cell=jnp.asarray(params.init_cell, jnp.int32),
                         busy=jnp.zeros(params.taxi_mask.shape, jnp.int32),
                         waiting=jnp.zeros(params.cell_mask.shape + (W,), jnp.int32),
                         t=jnp.zeros((), jnp.int32), metrics=TaxiMetrics.zeros())

    def reset(self, key, params):
        state = self.initial_state(params)
        return self.observe(state, params), state

    # ------------------------------------------------------------ step
    def step_of_day(self, t, params) -> jax.Array:
        """The step of day of episode step `t` (episodes start at `start_step`; wraps at midnight)."""
        return (params.start_step + t) % params.demand_rate.shape[0]

    def expected_orders(self, t, params) -> jax.Array:
        """(C,) expected new orders at episode step `t`."""
        return params.demand_scale * params.demand_rate[self.step_of_day(t, params)] * params.cell_mask

    def sample_exogenous(self, key, state: TaxiState, params) -> TaxiExogenous:
        k_orders, k_dest = jax.random.split(key)
        if self.config.mode == "replay":
            H = params.replay_orders.shape[0]
            new = params.replay_orders[jnp.minimum(state.t, H - 1)]
        else:
            new = jax.random.poisson(k_orders, self.expected_orders(state.t, params)).astype(jnp.int32)
        new = jnp.where(params.cell_mask, new, 0).astype(jnp.int32)
        dest_u = jax.random.uniform(k_dest, params.taxi_mask.shape, jnp.float32)
        return TaxiExogenous(new_orders=new, dest_u=dest_u)

    def step(self, key, state, action, params):
        return self.step_with(self.sample_exogenous(key, state, params), state, action, params)

    def step_with(self, exog: TaxiExogenous, state: TaxiState, action, params):
        """The step given its exogenous draws (the NumPy reference takes the same)."""
        C, N = params.num_cells, params.num_taxis
        real = jnp.asarray(params.taxi_mask)
        # 1. orders arrive
        waiting = state.waiting.at[:, 0].add(exog.new_orders)
        # 2. in-cell matching: the lowest-index idle taxis of a cell take its oldest orders
        idle = real & (state.busy == 0)
        idle_count = jnp.zeros((C,), jnp.int32).at[state.cell].add(idle.astype(jnp.int32))
        demand = waiting.sum(1)
        served = jnp.minimum(idle_count, demand)
        rank = rank_within(state.cell, idle, C)
        matched = idle & (rank < served[state.cell])
        waiting = take_oldest(waiting, served)
        hour = self.step_of_day(state.t, params) * 24 // params.demand_rate.shape[0]
        dest = jnp.minimum(inverse_cdf(params.dest_cdf[hour], state.cell, exog.dest_u), C - 1)
        fare = jnp.where(matched, params.fare[state.cell, dest], 0.0)
        trip_km = jnp.where(matched, params.trip_km[state.cell, dest], 0.0)
        busy = jnp.where(matched, params.travel_steps[state.cell, dest], state.busy)
        cell = jnp.where(matched, dest, state.cell)
        # 3. orders at the maximum wait expire, the rest age
        expired = waiting[:, -1].sum()
        waiting = jnp.concatenate([jnp.zeros((C, 1), jnp.int32), waiting[:, :-1]], axis=1)
        # 4. busy taxis drive (a trip of k steps frees the taxi k steps after its match)
        busy = jnp.maximum(busy - 1, 0)
        # 5. idle taxis that were not matched reposition by their actions
        acting = idle & ~matched
        action = jnp.asarray(action, jnp.int32)
        direction = jnp.clip(action - 1, 0, 5)
        wants = acting & (action > 0)
        valid = params.neighbor_mask[cell, direction]
        moved = wants & valid
        cell = jnp.where(moved, params.neighbors[cell, direction], cell)
        # 6. reward: supply-demand balance per cell after the step
        supply = jnp.zeros((C,), jnp.float32).at[cell].add((real & (busy == 0)).astype(jnp.float32))
        need = waiting.sum(1).astype(jnp.float32) + self.expected_orders(state.t + 1, params)
        cell_balance = balance(supply, need)
        active = params.cell_mask & ((supply > 0) | (need > 0))
        mean_balance = jnp.sum(jnp.where(active, cell_balance, 0.0)) / jnp.maximum(active.sum(), 1)
        local = cell_balance[cell]
        reward = {"local": local, "global": jnp.broadcast_to(mean_balance, local.shape),
                  "both": 0.5 * (local + mean_balance), "served": matched.astype(jnp.float32)}[self.config.reward] * real
        counts = TaxiMetrics(orders=exog.new_orders.sum(), served=served.sum(), expired=expired,
                             moves=moved.sum(), invalid_moves=(wants & ~valid).sum(), revenue=fare.sum(),
                             occupied_km=trip_km.sum(), balance=mean_balance, steps=jnp.ones((), jnp.int32))
        t = state.t + 1
        next_state = TaxiState(cell=cell, busy=busy, waiting=waiting, t=t,
                               metrics=accumulate(state.metrics, counts))
        info = dict(orders=exog.new_orders.sum(), served=served.sum(), expired=expired, moves=moved.sum(),
                    revenue=fare.sum(), moved=moved, direction=direction)  # (per taxi: who repositioned, and where)
        return self.observe(next_state, params), next_state, reward.astype(jnp.float32), t >= self.config.horizon, info

    # ------------------------------------------------------------ observations
    def _cell_features(self, state: TaxiState, params) -> jax.Array:
        """(C, 3): idle taxis, waiting orders and expected orders next step, per cell,
        divided by the fleet's mean taxis per real cell (so features are O(1))."""
        C = params.num_cells
        idle = jnp.zeros((C,), jnp.float32).at[state.cell].add((params.taxi_mask & (state.busy == 0)).astype(jnp.float32))
        scale = jnp.maximum(params.taxi_mask.sum(), 1) / jnp.maximum(params.cell_mask.sum(), 1)
        feats = jnp.stack([idle, state.waiting.sum(1).astype(jnp.float32), self.expected_orders(state.t, params)], 1)
        return feats / scale

    def _clock(self, t, params) -> jax.Array:
        angle = 2.0 * jnp.pi * self.step_of_day(t, params).astype(jnp.float32) / params.demand_rate.shape[0]
        return jnp.stack([jnp.sin(angle), jnp.cos(angle)])

    def observe(self, state: TaxiState, params) -> jax.Array:
        """(N, 24) per taxi: [its cell's features, each neighbour's (0 where absent),
        busy flag, sin and cos of the time of day]; padding taxis' rows are 0."""
        table, index = self.distinct_observations(state, params)
        return table[index]

    def distinct_observations(self, state: TaxiState, params):
        """Taxis in one cell with one status see one observation: a (2C + 1, 24) table, row
        busy x C + cell for a real taxi and the last (zeros) for padding, and each taxi's row.
        So networks run over 2C + 1 rows, not N taxis (10,000 taxis on 250 cells: 501 rows)."""
        feats = self._cell_features(state, params)
        C = params.num_cells
        nbr = (feats[params.neighbors] * params.neighbor_mask[..., None]).reshape(C, -1)
        clock = jnp.broadcast_to(self._clock(state.t, params), (C, 2))
        rows = [jnp.concatenate([feats, nbr, jnp.full((C, 1), busy, jnp.float32), clock], axis=1) for busy in (0.0, 1.0)]
        table = jnp.concatenate([*rows, jnp.zeros((1, rows[0].shape[1]), jnp.float32)]).astype(jnp.float32)
        index = jnp.where(params.taxi_mask, (state.busy > 0).astype(jnp.int32) * C + state.cell, 2 * C)
        return table, index.astype(jnp.int32)

    def global_state(self, state: TaxiState, params) -> jax.Array:
        """Idle taxis, waiting and expected orders of every cell, plus the clock."""
        return jnp.concatenate([self._cell_features(state, params).T.reshape(-1),
                                self._clock(state.t, params)]).astype(jnp.float32)

    # ------------------------------------------------------------ metrics
    def step_stats(self, info, reward, params) -> dict:
        return dict(orders=info["orders"].sum(), served=info["served"].sum(), revenue=info["revenue"].sum(),
                    moves=info["moves"].sum(), reward=(reward * params.taxi_mask).sum())

    def training_metrics(self, sums: dict, num_envs: int) -> dict:
        return dict(order_response_rate=sums["served"] / jnp.maximum(sums["orders"], 1.0),
                    revenue=sums["revenue"] / num_envs, empty_moves=sums["moves"] / num_envs)

    def episode_metrics(self, state: TaxiState, params) -> dict:
        """Order response rate, revenue and PCR, the paper's composite index CI, empty and
        occupied km, and our ORR x occupied-km share (CONTRACT.md)."""
        m = state.metrics
        orr = jnp.where(m.orders > 0, m.served / jnp.maximum(m.orders, 1), 1.0)
        empty_km = m.moves * params.move_km
        efficiency = jnp.where(m.occupied_km + empty_km > 0, m.occupied_km / jnp.maximum(m.occupied_km + empty_km, 1e-9), 1.0)
        pcr = m.revenue / PCR_UNIT
        # the share lost from the integer counts: exactly 0 when every order is served (a compiled
        # 1 - ORR once came out a hair below 0 there, and CI a huge negative number instead of inf)
        lost = (m.orders - m.served) / jnp.maximum(m.orders, 1)
        return {"order_response_rate": orr, "revenue": m.revenue, "pcr": pcr, "ci": composite_index(orr, pcr, lost),
                "orr_x_occupied_share": orr * efficiency, "empty_km": empty_km, "occupied_km": m.occupied_km,
                "orders": m.orders, "served": m.served, "expired": m.expired,
                "invalid_moves": m.invalid_moves, "mean_balance": m.balance / jnp.maximum(m.steps, 1)}


PCR_UNIT = 1e4  # PCR, platform cumulative revenue, in units of $10,000 (see composite_index)


def composite_index(orr, pcr, lost=None):
    """The TDEVR paper's composite index, CI = 0.01 x PCR / (1 - ORR): revenue per share of
    orders lost. Recovered from the paper's own (ORR, PCR, CI) triples, which it reproduces
    to +/- 0.01 (tests/envs/test_taxi.py). The paper's tables do not state PCR's unit; we
    report fares in $10,000 (`PCR_UNIT`), which puts our PCR at the paper's order of
    magnitude (its 130-145). CI scales with that unit: compare CIs between policies here,
    not with the paper's. Infinite when every order is served. NumPy or JAX arrays; `lost`
    (1 - ORR) where the caller has it exactly, from counts."""
    lost = 1.0 - orr if lost is None else lost
    return 0.01 * pcr / lost


def period_metrics(served, orders, revenue, episodes=1) -> dict:
    """ORR, PCR and CI over a period of `episodes` episodes from its totals, as the paper reports
    them for its test period: ORR is the period's served / ordered, not a mean of each episode's
    rate, and CI comes from the period's ORR (a mean of daily CIs weighs a quiet, near-perfect
    day's huge CI, and one perfect day makes it infinite). PCR is the period's cumulative revenue
    per episode (`PCR_UNIT`; an episode is a day on the 250-cell city): the paper's cumulative
    PCR over `episodes`, so periods of different lengths compare; CI is the paper's CI over
    `episodes` likewise. NumPy in and out."""
    served, orders, revenue = (np.asarray(x, np.float64) for x in (served, orders, revenue))
    if np.any(orders <= 0) or np.any(served > orders) or np.any(served < 0) or episodes < 1:
        raise ValueError(f"period_metrics: need 0 <= served <= orders, orders > 0 and episodes >= 1; got "
                         f"served {served}, orders {orders}, episodes {episodes}")
    lost = (orders - served) / orders
    pcr = revenue / episodes / PCR_UNIT
    with np.errstate(divide="ignore"):  # every order of the period served: CI is infinite
        ci = composite_index(served / orders, pcr, lost)
    return {"order_response_rate": served / orders, "pcr": pcr, "ci": ci}


def make_params(city, *, num_taxis: int, taxi_slots: int | None = None, seed: int = 0, demand_scale: float = 1.0,
                replay_orders=None) -> TaxiParams:
    """TaxiParams for a `TaxiCity` with a fleet of `num_taxis` taxis (padded to
    `taxi_slots`), placed in proportion to each cell's daily demand (seeded)."""
    slots = int(taxi_slots or num_taxis)
    if not 1 <= num_taxis <= slots:
        raise ValueError(f"make_params: need 1 <= num_taxis <= taxi_slots, got {num_taxis} and {slots}")
    weight = np.asarray(city.demand_rate, np.float64).sum(0) * city.cell_mask
    if weight.sum() <= 0:
        raise ValueError(f"make_params: city {city.name} has no demand")
    init = np.random.default_rng(seed).choice(len(weight), size=num_taxis, p=weight / weight.sum())
    init_cell = np.zeros(slots, np.int32)
    init_cell[:num_taxis] = np.sort(init)
    od = np.asarray(city.od_prob, np.float64)
    cdf = np.cumsum(od / np.maximum(od.sum(-1, keepdims=True), 1e-12), axis=-1)
    cdf = np.where(cdf >= 1.0 - 1e-7, 1.0, cdf)  # no destination past the last one with probability
    horizon = city.demand_rate.shape[0]
    replay = np.zeros((horizon, city.num_cells), np.int32) if replay_orders is None else np.asarray(replay_orders, np.int32)
    return TaxiParams(
        neighbors=jnp.asarray(city.neighbors, jnp.int32), neighbor_mask=jnp.asarray(city.neighbor_mask, bool),
        cell_mask=jnp.asarray(city.cell_mask, bool), travel_steps=jnp.asarray(np.maximum(city.travel_steps, 1), jnp.int32),
        fare=jnp.asarray(city.fare, jnp.float32), trip_km=jnp.asarray(city.trip_km, jnp.float32),
        move_km=jnp.asarray(city.cell_km, jnp.float32), demand_rate=jnp.asarray(city.demand_rate, jnp.float32),
        dest_cdf=jnp.asarray(cdf, jnp.float32), replay_orders=jnp.asarray(replay, jnp.int32),
        taxi_mask=jnp.asarray(np.arange(slots) < num_taxis), init_cell=jnp.asarray(init_cell),
        demand_scale=jnp.asarray(demand_scale, jnp.float32), start_step=jnp.asarray(city.start_step, jnp.int32))
