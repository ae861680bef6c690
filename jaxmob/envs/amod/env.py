"""Region-level fleet (AMoD benchmark semantics) as a compiled, vmappable environment.

Every region is an agent. The state after a step is the fleet *after* that
step's passenger matching: idle vehicles per region and vehicles in transit
by the step they arrive. One `step(action)` is

1. rebalancing: the action sets a desired number of idle vehicles per region;
   the benchmark's own rebalancing problem (least total rebalancing time s.t.
   inflow - outflow >= desired - idle and outflow <= idle, over every ordered
   pair, relays allowed; `solvers.transport.rebalancing_flow`, exact, in-graph)
   decides the empty moves;
2. time advances: vehicles due now become idle;
3. passenger matching: the step's requests (Poisson draws, or a replayed
   episode) are served to maximise revenue, sum(price * served), subject to
   served <= requests and each origin's idle vehicles; the LP separates by
   origin and its exact optimum serves destinations in descending price
   order.

Timing is the benchmark's: a trip or an empty move of tau steps begun at step
t delivers its vehicle to the matching of step t + tau + 1. An episode is
`horizon` = 19 decisions between 20 matchings (the first one in `reset`).

Team reward = passenger profit (revenue - beta * tstep * trip steps per
served request) - rebalancing cost (beta * tstep * rebalancing steps per
moved vehicle): the benchmark's reward, every table's headline. What a
region agent is paid (`AmodConfig.reward`):
* 'profit': the team reward shared evenly (team / regions);
* 'balance' (META's): region i's supply-demand balance of the step,
  b_i = min(D_i, S_i) / max(D_i, S_i), and 1 when both are 0, with D_i the
  step's requests from i and S_i its idle vehicles before matching; in [0, 1],
  1 when supply equals demand. `reset` matches the
requests of step 0 from the initial fleet. Vehicles are neither created nor
lost: idle + in transit = fleet at every step (property-tested).

Actions (`AmodConfig.action`):
* 'levels' (PPO family): each region picks a weight in 0..levels-1; the desired
  distribution is the idle fleet split by weight (floor), all zero = no moves.
* 'meta' (META, DDPG): each region outputs a in [-1, 1]; regions with
  a > xi offer x_i = round(a_i * idle_i) vehicles, regions with a < -xi ask
  y_j = round(|a_j| * idle_j), and a Kuhn-Munkres matching of senders to
  receivers on w_ij = d_ij * |x_i - y_j| decides who sends x_i to whom
  (`meta.py`; `dispatch='min'` is jaxmob's earlier variant).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ...solvers.transport import rebalancing_flow
from ...core.env import Agents, Environment, Spec, accumulate, is_int
from ...core.random import poisson_by_inversion, random_words, uniform_from_bits

MODES = ("poisson", "replay")
ACTIONS = ("levels", "meta")
DISPATCHES = ("paper", "min")  # META as published | the earlier variant (asks expected requests, moves the min)
REWARDS = ("profit", "balance")
LOOKAHEAD = 4  # steps of arrivals and expected requests an observation shows
LOCAL_FEATURES = 3 + 2 * LOOKAHEAD  # idle, arrivals, expected requests, imbalance, unmet (then id, time)


@dataclass(frozen=True)
class AmodConfig:
    """Static settings: episode length, demand mode, action kind, transit pipeline length."""

    horizon: int = 19  # rebalancing decisions: the benchmark's 20 matchings, 19 decisions
    mode: str = "poisson"
    action: str = "levels"
    dispatch: str = "paper"
    reward: str = "profit"
    levels: int = 5
    max_steps: int = 20  # longest trip or rebalancing, in steps (the transit pipeline's length)

    def __post_init__(self):
        for name, ok, want in (("horizon", is_int(self.horizon) and self.horizon >= 1, "an integer >= 1"),
                               ("mode", self.mode in MODES, f"one of {MODES}"),
                               ("action", self.action in ACTIONS, f"one of {ACTIONS}"),
                               ("dispatch", self.dispatch in DISPATCHES, f"one of {DISPATCHES}"),
                               ("reward", self.reward in REWARDS, f"one of {REWARDS}"),
                               ("levels", is_int(self.levels) and self.levels >= 2, "an integer >= 2"),
                               ("max_steps", is_int(self.max_steps) and self.max_steps >= 1, "an integer >= 1")):
            if not ok:
                raise ValueError(f"AmodConfig.{name}: must be {want}, got {getattr(self, name)!r}")


@struct.dataclass
class AmodParams:
    demand: jax.Array  # (S, R, R) float32 expected requests per step (poisson mode)
    replay: jax.Array  # (S, R, R) int32 requests of a replayed episode (zeros in poisson mode)
    price: jax.Array  # (S, R, R) float32
    price_rank: jax.Array  # (S, R, R) int32 destinations of each origin by descending price
    pair_order: jax.Array  # (S, R * R) int32 OD pairs by descending expected requests
    pair_slot: jax.Array  # (S, R * R) int32 the inverse permutation
    trip_steps: jax.Array  # (S, R, R) int32 >= 1
    reb_steps: jax.Array  # (R, R) int32, 0 on the diagonal
    distance: jax.Array  # (R, R) float32 rebalancing steps, symmetrised (META's d_ij)
    init_idle: jax.Array  # (R,) int32
    step_cost: jax.Array  # () float32 cost of one vehicle driving one step
    reward_scale: jax.Array  # () float32 expected revenue per region and step (learning reward unit)
    vehicle_scale: jax.Array  # () float32 fleet per region (observation unit)
    xi: jax.Array  # () float32 META's threshold

    @property
    def num_regions(self) -> int:
        return int(self.reb_steps.shape[-1])


@struct.dataclass
class AmodMetrics:
    requests: jax.Array
    served: jax.Array
    revenue: jax.Array
    trip_cost: jax.Array
    rebalancing_cost: jax.Array
    rebalanced: jax.Array  # vehicles moved empty
    steps: jax.Array

    @classmethod
    def zeros(cls):
        z, f = jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32)
        return cls(requests=z, served=z, revenue=f, trip_cost=f, rebalancing_cost=f, rebalanced=z, steps=z)


@struct.dataclass
class AmodState:
    idle: jax.Array  # (R,) int32 after this step's matching
    transit: jax.Array  # (L + 1, R) int32 vehicles idle for the matching k + 1 steps from now
    unmet: jax.Array  # (R,) int32 requests of this step left unserved, per origin
    t: jax.Array  # () int32
    metrics: AmodMetrics


def make_params(scenario, *, replay: np.ndarray | None = None, xi: float = 0.0) -> AmodParams:
    """Params of `scenario` (an `AmodScenario`), replaying `replay` (steps, R, R) if given."""
    S, R = scenario.demand.shape[0], scenario.num_regions
    rep = np.zeros((S, R, R), np.int32)
    if replay is not None:
        replay = np.asarray(replay, np.int32)
        rep[: len(replay)] = replay[:S]
    rank = np.argsort(-scenario.price, axis=-1, kind="stable").astype(np.int32)
    order = np.argsort(-scenario.demand.reshape(S, R * R), axis=-1, kind="stable").astype(np.int32)
    reb = scenario.reb_steps.astype(np.float32)
    revenue = float((scenario.demand * scenario.price)[: scenario.horizon + 1].sum()) / (R * (scenario.horizon + 1))
    return AmodParams(
        demand=jnp.asarray(scenario.demand, jnp.float32), replay=jnp.asarray(rep),
        price=jnp.asarray(scenario.price, jnp.float32), price_rank=jnp.asarray(rank),
        pair_order=jnp.asarray(order), pair_slot=jnp.asarray(np.argsort(order, axis=-1).astype(np.int32)),
        trip_steps=jnp.asarray(scenario.trip_steps, jnp.int32), reb_steps=jnp.asarray(scenario.reb_steps, jnp.int32),
        distance=jnp.asarray((reb + reb.T) / 2.0), init_idle=jnp.asarray(scenario.init_idle, jnp.int32),
        step_cost=jnp.float32(scenario.step_cost), reward_scale=jnp.float32(max(revenue, 1e-6)),
        vehicle_scale=jnp.float32(max(scenario.fleet / R, 1.0)), xi=jnp.float32(xi))


def match_passengers(idle: jax.Array, requests: jax.Array, rank: jax.Array) -> jax.Array:
    """`(R, R)` served requests: the revenue-maximising matching of one step.

    The LP max sum(price * x) s.t. x <= requests, sum_j x[i, j] <= idle[i]
    separates by origin i into a fractional knapsack with unit weights, whose
    optimum fills destinations in descending price order (`rank`); with
    integer data it is integral."""
    ordered = jnp.take_along_axis(requests, rank, axis=-1)
    before = jnp.cumsum(ordered, axis=-1) - ordered
    take = jnp.clip(idle[..., None] - before, 0, ordered)
    return jnp.zeros_like(requests).at[jnp.arange(requests.shape[0])[:, None], rank].set(take)


def desired_moves(idle: jax.Array, desired: jax.Array, reb_steps: jax.Array) -> jax.Array:
    """`(R, R)` int32 empty moves of the benchmark's rebalancing problem for `desired`
    (`sum(desired) <= sum(idle)`), at least total rebalancing time."""
    return rebalancing_flow(idle, desired, reb_steps.astype(jnp.int32))


def desired_from_weights(idle: jax.Array, weight: jax.Array) -> jax.Array:
    """The idle fleet split by `weight` (integers >= 0), floored, as the benchmark's
    int(share * total): exact in integers; all zero keeps the fleet where it is."""
    weight = weight.astype(jnp.int32)
    total, norm = idle.sum(), weight.sum()
    return jnp.where(norm > 0, (weight * total) // jnp.maximum(norm, 1), idle)


def schedule(transit: jax.Array, flows: jax.Array, steps: jax.Array) -> jax.Array:
    """Add `flows[i, j]` vehicles, begun now on legs of `steps[i, j]` steps, to `transit`:
    they are idle for the matching `steps + 1` steps from now (the benchmark's timing).

    A scatter-*add*: several origins may send to one region with the same delay
    in one step, and none of them may overwrite another (the benchmark's own
    simulator overwrites there and loses vehicles)."""
    R = flows.shape[-1]
    dest = jnp.broadcast_to(jnp.arange(R)[None, :], flows.shape)
    return transit.at[steps, dest].add(flows)


class AmodEnv(Environment):
    agent_name = "region"

    def __init__(self, config: AmodConfig = AmodConfig()):
        self.config = config

    # ------------------------------------------------------------------ dynamics
    @property
    def episode_length(self) -> int:
        return self.config.horizon

    def requests_at(self, key, t, params) -> jax.Array:
        if self.config.mode == "replay":
            return params.replay[t]
        # Inversion walks every lane to the largest rate's tail: draw the R busiest
        # pairs of the step apart from the rest, so the many quiet pairs stop early.
        R = params.num_regions
        lam = params.demand[t].reshape(-1)[params.pair_order[t]]
        u = uniform_from_bits(random_words(key, lam.size))
        counts = jnp.concatenate([poisson_by_inversion(u[:R], lam[:R]), poisson_by_inversion(u[R:], lam[R:])])
        return counts[params.pair_slot[t]].reshape(R, R)

    def _match(self, idle, transit, requests, t, params):
        served = match_passengers(idle, requests, params.price_rank[t])
        trip = params.trip_steps[t]
        transit = schedule(transit, served, trip)
        income = (served * params.price[t]).sum()
        trip_cost = params.step_cost * (served * trip).sum()
        return idle - served.sum(axis=1), transit, served, income, trip_cost

    def initial_state(self, key, params) -> AmodState:
        R = params.num_regions
        transit = jnp.zeros((self.config.max_steps + 1, R), jnp.int32)
        requests = self.requests_at(key, 0, params)
        idle, transit, served, income, trip_cost = self._match(params.init_idle, transit, requests, 0, params)
        metrics = accumulate(AmodMetrics.zeros(), AmodMetrics(
            requests=requests.sum(), served=served.sum(), revenue=income, trip_cost=trip_cost,
            rebalancing_cost=0.0, rebalanced=0, steps=0))
        return AmodState(idle=idle, transit=transit, unmet=(requests - served).sum(axis=1), t=jnp.int32(0),
                         metrics=metrics)

    def reset(self, key, params):
        state = self.initial_state(key, params)
        return self.observe(state, params), state

    def moves(self, state: AmodState, action: jax.Array, params) -> jax.Array:
        """`(R, R)` empty moves the action asks for (see the module docstring)."""
        if self.config.action == "meta":
            from .meta import meta_moves

            expected = params.demand[jnp.minimum(state.t + 1, params.demand.shape[0] - 1)].sum(axis=1)
            return meta_moves(state.idle, expected, action, params.xi, params.distance, self.config.dispatch)
        return desired_moves(state.idle, desired_from_weights(state.idle, action), params.reb_steps)

    def step_moves(self, key, state: AmodState, moves: jax.Array, params):
        """The step for given empty moves (`moves[i, j]` vehicles i -> j, at most the idle ones)."""
        moves = moves * (1 - jnp.eye(moves.shape[-1], dtype=moves.dtype))
        transit = schedule(state.transit, moves, params.reb_steps)
        idle = state.idle - moves.sum(axis=1)
        reb_cost = params.step_cost * (moves * params.reb_steps).sum()
        t = state.t + 1
        idle = idle + transit[0]
        transit = jnp.concatenate([transit[1:], jnp.zeros_like(transit[:1])])
        requests = self.requests_at(key, t, params)
        supply, demand = idle, requests.sum(axis=1)
        idle, transit, served, income, trip_cost = self._match(idle, transit, requests, t, params)
        profit = income - trip_cost
        team = profit - reb_cost
        metrics = accumulate(state.metrics, AmodMetrics(
            requests=requests.sum(), served=served.sum(), revenue=income, trip_cost=trip_cost,
            rebalancing_cost=reb_cost, rebalanced=moves.sum(), steps=1))
        nxt = AmodState(idle=idle, transit=transit, unmet=(requests - served).sum(axis=1), t=t, metrics=metrics)
        R = params.num_regions
        if self.config.reward == "balance":
            low, high = jnp.minimum(demand, supply), jnp.maximum(demand, supply)
            reward = jnp.where(high > 0, low / jnp.maximum(high, 1), 1.0).astype(jnp.float32)
        else:
            reward = jnp.full((R,), team / R, jnp.float32)
        info = dict(team=team, profit=profit, rebalancing_cost=reb_cost, served=served.sum(), requests=requests.sum(),
                    rebalanced=moves.sum(), moves=moves)
        return self.observe(nxt, params), nxt, reward, t >= self.config.horizon, info

    def step(self, key, state, action, params):
        return self.step_moves(key, state, self.moves(state, action, params), params)

    # ------------------------------------------------------------------ what agents see
    def observe(self, state: AmodState, params) -> jax.Array:
        R, H, K = params.num_regions, self.config.horizon, LOOKAHEAD
        scale = params.vehicle_scale
        S = params.demand.shape[0]
        ahead = jnp.minimum(state.t + 1 + jnp.arange(K), S - 1)
        expected = params.demand[ahead].sum(axis=-1)  # (K, R) requests leaving each region
        available = state.idle[None, :] + jnp.cumsum(state.transit[:K], axis=0)  # (K, R)
        imbalance = expected[0] - state.idle  # META's f_i = N_d - N_s
        time = jax.nn.one_hot(jnp.minimum(state.t, H), H + 1)
        columns = [state.idle[:, None] / scale, (available / scale).T, (expected / scale).T,
                   (imbalance / scale)[:, None], (state.unmet / scale)[:, None]]
        local = jnp.concatenate([c.astype(jnp.float32) for c in columns], axis=1)
        return jnp.concatenate([local, jnp.eye(R, dtype=jnp.float32), jnp.broadcast_to(time, (R, H + 1))], axis=1)

    def observation_spec(self, params) -> Spec:
        R = params.num_regions
        return Spec((R, LOCAL_FEATURES + R + self.config.horizon + 1), jnp.float32)

    def action_spec(self, params) -> Spec:
        R = params.num_regions
        if self.config.action == "meta":
            return Spec((R,), jnp.float32)
        return Spec((R,), jnp.int32, self.config.levels)

    def global_state(self, state: AmodState, params) -> jax.Array:
        obs = self.observe(state, params)  # every region's local features, and the time once
        return jnp.concatenate([obs[:, :LOCAL_FEATURES].ravel(), obs[0, LOCAL_FEATURES + params.num_regions:]])

    def agents(self, params) -> Agents:
        mask = jnp.ones((params.num_regions,), bool)
        spec = self.action_spec(params)
        return Agents(mask) if spec.num_values is None else Agents.discrete(mask, spec.num_values)

    def learning_reward(self, state, action, reward, info, params, coefs):
        return reward if self.config.reward == "balance" else reward / params.reward_scale

    # ------------------------------------------------------------------ metrics
    def episode_metrics(self, state: AmodState, params) -> dict:
        m = state.metrics
        profit = m.revenue - m.trip_cost
        return dict(reward=profit - m.rebalancing_cost, served_ratio=m.served / jnp.maximum(m.requests, 1),
                    profit=profit, revenue=m.revenue, rebalancing_cost=m.rebalancing_cost,
                    rebalanced=m.rebalanced.astype(jnp.float32), served=m.served.astype(jnp.float32),
                    requests=m.requests.astype(jnp.float32))

    def step_stats(self, info, reward, params) -> dict:
        return dict(reward=info["team"], profit=info["profit"], rebalancing_cost=info["rebalancing_cost"],
                    served=info["served"].astype(jnp.float32), requests=info["requests"].astype(jnp.float32))

    def training_metrics(self, sums: dict, num_envs: int) -> dict:
        return dict(reward=sums["reward"] / num_envs, served_ratio=sums["served"] / jnp.maximum(sums["requests"], 1.0),
                    profit=sums["profit"] / num_envs, rebalancing_cost=sums["rebalancing_cost"] / num_envs)
