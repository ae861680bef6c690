"""On-street parking allocation as a compiled, vmappable environment (every facility an agent).

Time moves in one-minute decision epochs. The state at minute t holds each
facility's free bays, the vehicles due to leave and to arrive at every later
minute, and the queue of requests (destination, request time, intended stay)
waiting to be allocated, oldest first. One `step(action)` at minute t:

1. offers: every facility has a score in [0, 1]: an optimised (core) facility
   its priority (a + 1) / 2 from its action a in [-1, 1]; a static facility its
   rule's (`STATIC_RULES`): 'fifo' and 'siro', 1 (every offer equal, so a
   request takes its nearest free bay); 'longest_free', 1 - exp(-minutes free /
   30), the facility that has had free bays longest first; 'random_facility', a
   fresh uniform draw; 'spt', 1;
2. allocation: the queued requests are served one by one in the rule's order of
   service: oldest first (FIFO, and every rule but SIRO and SPT), in random order
   (SIRO, a fresh permutation each minute), or shortest intended stay first (SPT). Each goes to the best offer among
   the facilities within walking distance of its destination that still have
   a free bay (ties: the nearer one). An allocated vehicle reserves its bay
   now, drives there (`drive_min` minutes) and stays;
3. a request still waiting `max_wait` minutes after it was made fails; the
   others keep cruising and are offered again next minute;
4. the requests made during [t, t+1) join the queue (a full queue turns the
   newest away, counted as failures);
5. time advances to t+1: bays whose vehicles leave at t+1 come free, and
   vehicles reaching their bay at t+1 park.

Reward (delayed to the minute the vehicle parks, shared by the optimised
agents): each vehicle that parks in an optimised facility (`reward_scope`
'facility', the default) or whose destination is in the core, wherever it
parks ('destination'), pays `base - cruise_penalty * cruise minutes -
walk_penalty * walk minutes`, cruise = park time - request time (queueing,
cruising and the drive to the bay); 1 - 0.1 * cruise by default. Failures, and
the vehicles outside the scope, pay nothing.

Bays and vehicles are integers and never created or lost: free + vehicles
still to leave = capacity at every facility, and requests made = queued +
allocated + failed (property-tested; `reference.py` is the NumPy oracle).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ...core.env import Agents, Environment, Spec, accumulate

WALK_M_PER_MIN = 80.0
DRIVE_M_PER_MIN = 250.0  # 15 km/h in the CBD

STATIC_RULES = ("fifo", "siro", "longest_free", "random_facility", "spt")
RULE_LABELS = {"fifo": "FIFO (oldest first, nearest free bay)", "siro": "SIRO (random order, nearest free bay)",
               "longest_free": "longest-free facility first", "random_facility": "random facility",
               "spt": "SPT (shortest stay first, nearest free bay)"}
MODES = ("poisson", "replay")
REWARD_SCOPES = ("facility", "destination")  # who pays: vehicles parked in the core, or requests for the core
FEATURES = 14  # per-facility features of one minute (the observation holds `history` of them + the action before)
WALK_LIMIT_MIN = 5.0  # walking minutes a driver accepts (400 m at 80 m/min)
NEARBY_MINUTES = 15  # predicted demand: mean requests/min over the next quarter hour
NEVER = 1 << 20  # free_since of a full facility
CALENDAR_SLACK = 320  # calendar minutes past the day (departures later than that fall on its last slot, after the day)


@dataclass(frozen=True)
class ParkingConfig:
    """Static settings: the episode length, demand mode, queue and history sizes."""

    horizon: int = 840  # minutes per episode (the whole 07:00-21:00 day)
    mode: str = "poisson"
    random_start: bool = False  # training: start at a random minute with the expected occupancy
    max_arrivals: int = 64  # request slots per minute (more are counted and turned away)
    queue: int = 512  # requests waiting or cruising at once (a stressed peak holds hundreds; a step costs what it holds)
    max_wait: int = 10  # minutes a request cruises before it fails
    history: int = 3  # minutes of features an observation shows (the GRU's window)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("horizon", "max_arrivals", "queue", "max_wait", "history"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")


@struct.dataclass
class ParkingParams:
    capacity: jax.Array  # (F,) int32
    region: jax.Array  # (F,) int32: 0 CBD, 1 Southbank, 2 periphery
    optimised: jax.Array  # (F,) bool
    offered: jax.Array  # (F, F) bool: destination -> facilities within walking distance
    walk_min: jax.Array  # (F, F) float32 walking minutes destination -> facility
    drive_min: jax.Array  # (F, F) int32 minutes to drive to a bay (>= 1)
    rate: jax.Array  # (T,) requests per minute
    period: jax.Array  # (T,) 1 at the peak
    dest_logits: jax.Array  # (2, F) off-peak, peak
    stay_minutes: jax.Array  # (S,) int32
    stay_logits: jax.Array  # (S,)
    expected_occ: jax.Array  # (T, F) expected parked vehicles (random starts)
    nearby: jax.Array  # (T, F) predicted requests/min for destinations within walking distance
    neighbours: jax.Array  # (F, K) int32 facility graph (nearest within walking distance)
    neighbour_mask: jax.Array  # (F, K) bool
    bay_facility: jax.Array  # (B,) int32 (random starts fill bays one by one)
    replay_dest: jax.Array  # (T, K) int32, -1 = empty slot (mode replay)
    replay_stay: jax.Array  # (T, K) int32
    replay_time: jax.Array  # (T, K) float32 minute fraction of the request
    minute0: jax.Array  # () int32 minute of day of t = 0
    static_rule: jax.Array  # () int32 index into STATIC_RULES
    base_reward: jax.Array  # () float32
    cruise_penalty: jax.Array  # () float32 per minute
    walk_penalty: jax.Array  # () float32 per minute
    reward_scope: jax.Array  # () int32 index into REWARD_SCOPES

    @property
    def num_facilities(self) -> int:
        return self.capacity.shape[-1]


@struct.dataclass
class ParkingMetrics:
    """Episode totals by (destination area: CBD, Southbank, periphery) x (period of the request: off-peak, peak)."""

    requests: jax.Array  # (3, 2) int32
    parked: jax.Array  # allocated a bay
    failed: jax.Array  # waited max_wait, or turned away
    cruise: jax.Array  # (3, 2) float32 minutes, summed over parked
    walk: jax.Array
    spread: jax.Array  # (3, 2) facility area x period: sum over minutes of the occupancy std across facilities
    minutes: jax.Array  # (2,) minutes per period
    reward: jax.Array  # () team reward paid
    bids: jax.Array  # (3,) int32 optimised facility-minutes: all, bidding the top (a >= 0.99), the bottom (a <= -0.99)

    @classmethod
    def zeros(cls):
        i, f = jnp.zeros((3, 2), jnp.int32), jnp.zeros((3, 2), jnp.float32)
        return cls(requests=i, parked=i, failed=i, cruise=f, walk=f, spread=f, minutes=jnp.zeros(2, jnp.int32),
                   reward=jnp.zeros((), jnp.float32), bids=jnp.zeros(3, jnp.int32))


@struct.dataclass
class Queue:
    """Requests waiting for a bay, oldest first (`valid` marks the used slots)."""

    dest: jax.Array  # (C,) int32
    time: jax.Array  # (C,) float32 request minute
    stay: jax.Array  # (C,) int32
    valid: jax.Array  # (C,) bool


@struct.dataclass
class ParkingState:
    t: jax.Array  # () int32 minute since the day start
    steps: jax.Array  # () int32 steps this episode
    free: jax.Array  # (F,) int32
    free_since: jax.Array  # (F,) int32 minute the facility last had a free bay after being full
    en_route: jax.Array  # (F,) int32 vehicles driving to a reserved bay
    departs: jax.Array  # (L, F) int32 vehicles leaving at each minute
    arrives: jax.Array  # (L, F) int32 vehicles reaching their bay at each minute
    due_reward: jax.Array  # (L,) float32 reward paid when those vehicles park
    queue: Queue
    hist: jax.Array  # (H, F, FEATURES + 1) features and the action before them, oldest first
    metrics: ParkingMetrics


def make_params(scenario, *, replay=None, static_rule: str = "fifo", base_reward: float = 1.0,
                cruise_penalty: float = 0.1, walk_penalty: float = 0.0, reward_scope: str = "facility",
                neighbours: int = 8) -> ParkingParams:
    """Env params of a `ParkingScenario`; `replay` = (dest, stay, time) arrays (T, K) of a replayed day."""
    if static_rule not in STATIC_RULES:
        raise ValueError(f"static_rule: must be one of {', '.join(STATIC_RULES)}, got {static_rule!r}")
    if reward_scope not in REWARD_SCOPES:
        raise ValueError(f"reward_scope: must be one of {', '.join(REWARD_SCOPES)}, got {reward_scope!r}")

    walk_m = scenario.walk_m()
    walk_min = walk_m / WALK_M_PER_MIN
    offered = walk_min <= WALK_LIMIT_MIN
    drive = np.maximum(1, np.ceil(walk_m / DRIVE_M_PER_MIN)).astype(np.int32)
    T = scenario.minutes
    minute = np.arange(scenario.day_start, scenario.day_end)
    period = scenario.period_of(minute)
    rate = scenario.rate_profile()
    lam = rate[:, None] * scenario.dest_weights[period]  # (T, F) requests/min per destination
    ahead = np.stack([lam[t:t + NEARBY_MINUTES].mean(0) for t in range(T)])
    nearby = ahead @ offered.astype(np.float64)  # requests/min whose destination offers f
    order = np.argsort(walk_min + np.eye(len(walk_min)) * 1e9, axis=1)[:, :neighbours]
    nb_mask = np.take_along_axis(offered, order, 1) & (order != np.arange(len(order))[:, None])
    if replay is None:
        replay = (np.full((1, 1), -1, np.int32), np.zeros((1, 1), np.int32), np.zeros((1, 1), np.float32))
    dest, stay, when = replay
    if np.any(np.asarray(dest) >= scenario.num_facilities):
        raise ValueError(f"replay: destination {int(np.max(dest))} is not a facility (there are {scenario.num_facilities})")
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    i32 = lambda x: jnp.asarray(x, jnp.int32)  # noqa: E731
    return ParkingParams(
        capacity=i32(scenario.capacity), region=i32(scenario.region), optimised=jnp.asarray(scenario.optimised),
        offered=jnp.asarray(offered), walk_min=f32(walk_min), drive_min=i32(drive), rate=f32(rate), period=i32(period),
        dest_logits=f32(np.log(scenario.dest_weights + 1e-30)), stay_minutes=i32(scenario.stay_minutes),
        stay_logits=f32(np.log(scenario.stay_probs)), expected_occ=f32(scenario.expected_occupancy()), nearby=f32(nearby),
        neighbours=i32(order), neighbour_mask=jnp.asarray(nb_mask), bay_facility=i32(np.sort(scenario.bay_facility)),
        replay_dest=i32(dest), replay_stay=i32(stay), replay_time=f32(when), minute0=i32(scenario.day_start),
        static_rule=i32(STATIC_RULES.index(static_rule)), base_reward=f32(base_reward),
        cruise_penalty=f32(cruise_penalty), walk_penalty=f32(walk_penalty),
        reward_scope=i32(REWARD_SCOPES.index(reward_scope)))


def rule_scores(rule, key, state: ParkingState, params: ParkingParams) -> jax.Array:
    """(F,) offers of a hand rule (index into `STATIC_RULES`, may be traced)."""
    idle = jnp.maximum(state.t - state.free_since, 0).astype(jnp.float32)
    longest_free = 1.0 - jnp.exp(-idle / 30.0)
    random_facility = jax.random.uniform(key, state.free.shape)
    return jnp.select([rule == 2, rule == 3], [longest_free, random_facility], jnp.ones_like(longest_free))


def service_order(rule, key, queue: Queue) -> jax.Array:
    """(C,) queue slots in the order they are served, the waiting requests first: the queue's
    own (oldest first, the waiting ones at its front), under SIRO (rule 1) the waiting ones in
    uniformly random order, under SPT (rule 4) shortest intended stay first (ties: oldest)."""
    slots = jnp.arange(queue.valid.shape[0])
    rank = jnp.select([rule == 1, rule == 4], [jax.random.uniform(key, slots.shape), queue.stay.astype(jnp.float32)],
                      slots.astype(jnp.float32))
    return jnp.argsort(jnp.where(queue.valid, rank, jnp.inf), stable=True)  # one sort; the waiting ones first


def offer_scores(key, state: ParkingState, action, params: ParkingParams) -> jax.Array:
    """(F,) scores: the optimised facilities' priorities, the static ones' rule."""
    priority = (jnp.clip(action, -1.0, 1.0) + 1.0) / 2.0
    return jnp.where(params.optimised, priority, rule_scores(params.static_rule, key, state, params))


class ParkingEnv(Environment):
    agent_name = "facility"

    def __init__(self, config: ParkingConfig | None = None, **kw):
        self.config = config if config is not None else ParkingConfig(**kw)

    @property
    def episode_length(self) -> int:
        return self.config.horizon

    def slots(self, params) -> int:
        """Length of the departure calendar: the day, the longest drive and the longest stay."""
        return params.rate.shape[0] + CALENDAR_SLACK

    # ------------------------------------------------------------------ demand
    def arrivals(self, key, t, params) -> tuple:
        """Requests made during [t, t+1): (dest, stay, time, valid) of `max_arrivals` slots, and how many
        more were made than fit (turned away)."""
        K = self.config.max_arrivals
        T = params.rate.shape[0]
        tc = jnp.minimum(t, T - 1)
        if self.config.mode == "replay":
            Tr, Kr = params.replay_dest.shape
            row = jnp.minimum(t, Tr - 1)
            dest = jnp.full((K,), -1, jnp.int32).at[:Kr].set(params.replay_dest[row][:K])
            stay = jnp.zeros((K,), jnp.int32).at[:Kr].set(params.replay_stay[row][:K])
            frac = jnp.zeros((K,), jnp.float32).at[:Kr].set(params.replay_time[row][:K])
            valid = (dest >= 0) & (t < Tr)
            extra = jnp.maximum((params.replay_dest[row] >= 0).sum() - K, 0) * (t < Tr)
        else:
            k_n, k_d, k_s, k_t = jax.random.split(key, 4)
            n = jax.random.poisson(k_n, params.rate[tc])
            valid = (jnp.arange(K) < n) & (t < T)
            dest = jax.random.categorical(k_d, params.dest_logits[params.period[tc]], shape=(K,)).astype(jnp.int32)
            stay = params.stay_minutes[jax.random.categorical(k_s, params.stay_logits, shape=(K,))]
            frac = jnp.sort(jax.random.uniform(k_t, (K,)))
            extra = jnp.maximum(n - K, 0) * (t < T)
        return dest, stay, t.astype(jnp.float32) + frac, valid, extra.astype(jnp.int32)

    # ------------------------------------------------------------------ reset
    def reset(self, key, params):
        state = self.initial_state(key, params)
        return self.observe(state, params), state

    def initial_state(self, key, params, start=None) -> ParkingState:
        """Minute t0 (`start`, else 0, or random with `random_start`) with the expected occupancy of t0 parked:
        each bay is taken with probability expected / capacity, its remaining stay drawn from the
        length-biased stay distribution (the stays of vehicles found parked)."""
        F, L = params.num_facilities, self.slots(params)
        T, C = params.rate.shape[0], self.config.queue
        k_t, k_fill, k_stay, k_rest = jax.random.split(key, 4)
        if start is not None:
            t0 = jnp.asarray(start, jnp.int32)
        elif self.config.random_start:
            t0 = jax.random.randint(k_t, (), 0, max(T - self.config.horizon, 0) + 1)
        else:
            t0 = jnp.int32(0)
        p = jnp.clip(params.expected_occ[t0] / jnp.maximum(params.capacity, 1), 0.0, 1.0)
        B = params.bay_facility.shape[0]
        taken = jax.random.uniform(k_fill, (B,)) < p[params.bay_facility]
        biased = params.stay_logits + jnp.log(params.stay_minutes.astype(jnp.float32))
        stay = params.stay_minutes[jax.random.categorical(k_stay, biased, shape=(B,))]
        rest = 1 + jnp.floor(jax.random.uniform(k_rest, (B,)) * stay).astype(jnp.int32)
        departs = jnp.zeros((L, F), jnp.int32).at[jnp.minimum(t0 + rest, L - 1), params.bay_facility].add(
            taken.astype(jnp.int32))
        free = params.capacity - departs.sum(0)
        empty = Queue(dest=jnp.zeros((C,), jnp.int32), time=jnp.zeros((C,), jnp.float32),
                      stay=jnp.zeros((C,), jnp.int32), valid=jnp.zeros((C,), bool))
        state = ParkingState(t=t0.astype(jnp.int32), steps=jnp.int32(0), free=free,
                             free_since=jnp.where(free > 0, t0, NEVER).astype(jnp.int32),
                             en_route=jnp.zeros((F,), jnp.int32), departs=departs, arrives=jnp.zeros((L, F), jnp.int32),
                             due_reward=jnp.zeros((L,), jnp.float32), queue=empty,
                             hist=jnp.zeros((self.config.history, F, FEATURES + 1), jnp.float32),
                             metrics=ParkingMetrics.zeros())
        feats = self.features(state, params)
        return state.replace(hist=jnp.broadcast_to(jnp.concatenate([feats, jnp.zeros((F, 1))], -1), state.hist.shape))

    # ------------------------------------------------------------------ step
    def step(self, key, state, action, params):
        k_rule, k_order, k_arr = jax.random.split(key, 3)
        scores = offer_scores(k_rule, state, action, params)
        order = service_order(params.static_rule, k_order, state.queue)
        arrivals = self.arrivals(k_arr, state.t, params)
        nxt, info = self.step_with(state, scores, order, arrivals, params)
        feats = self.features(nxt, params)
        row = jnp.concatenate([feats, jnp.clip(action, -1.0, 1.0)[:, None].astype(jnp.float32)], -1)
        nxt = nxt.replace(hist=jnp.concatenate([nxt.hist[1:], row[None]], 0))
        reward = jnp.where(params.optimised, info["team_reward"], 0.0).astype(jnp.float32)
        a = jnp.clip(action, -1.0, 1.0)
        bids = jnp.stack([params.optimised.sum(), (params.optimised & (a >= 0.99)).sum(), (params.optimised & (a <= -0.99)).sum()])
        nxt = nxt.replace(metrics=nxt.metrics.replace(bids=nxt.metrics.bids + bids.astype(jnp.int32)))
        done = nxt.steps >= self.config.horizon
        return self.observe(nxt, params), nxt, reward, done, info

    def step_with(self, state: ParkingState, scores, order, arrivals, params):
        """The dynamics of one minute for given offer scores, order of service (`service_order`:
        the queue's waiting slots first) and arrivals (`arrivals` as `self.arrivals` returns them); no randomness, so
        `reference.py` can replay it."""
        t = state.t
        L = state.departs.shape[0]
        q = state.queue
        period_of = lambda time: params.period[jnp.clip(jnp.floor(time).astype(jnp.int32), 0, params.period.shape[0] - 1)]  # noqa: E731

        # The loop decides, request by request, only what the next decision depends on (the free bays);
        # what each served request books (departure, arrival, pay, metrics) is written after it in
        # one scatter per array. (With the calibrated scatters inside the loop, 30 training steps of 8
        # cities at the weekday peak took 2.65 s, now 0.10 s: benchmarks/bench_parking_training.py.)
        def allocate(n, carry):
            free, booked = carry
            i = order[n]
            d = q.dest[i]
            ok = q.valid[i] & params.offered[d] & (free > 0)
            f = jnp.argmax(jnp.where(ok, scores - 1e-4 * params.walk_min[d], -jnp.inf))
            got = ok.any()
            return free.at[f].add(-got.astype(jnp.int32)), booked.at[i].set(jnp.where(got, f, -1))

        booked0 = jnp.full(q.valid.shape, -1, jnp.int32)  # per queue slot: the facility it got, or -1
        free, booked = jax.lax.fori_loop(0, q.valid.sum(), allocate, (state.free, booked0))
        served = booked >= 0
        g = served.astype(jnp.int32)
        f = jnp.maximum(booked, 0)
        drive = params.drive_min[q.dest, f]
        park_at = jnp.minimum(t + drive, L - 1)
        leave_at = jnp.minimum(t + drive + q.stay, L - 1)
        cruise = (t + drive).astype(jnp.float32) - q.time
        walk = params.walk_min[q.dest, f]
        scoped = jnp.where(params.reward_scope == 1, params.optimised[q.dest], params.optimised[f])
        pay = jnp.where(served & scoped, params.base_reward - params.cruise_penalty * cruise - params.walk_penalty * walk, 0.0)
        free_since = jnp.where((free == 0) & (state.free > 0), NEVER, state.free_since)
        en_route = state.en_route.at[f].add(g)
        departs = state.departs.at[leave_at, f].add(g)
        arrives = state.arrives.at[park_at, f].add(g)
        due = state.due_reward.at[park_at].add(pay)
        area, p_req = params.region[q.dest], period_of(q.time)
        zeros = ParkingMetrics.zeros()
        m = dict(parked=zeros.parked.at[area, p_req].add(g),
                 cruise=zeros.cruise.at[area, p_req].add(jnp.where(served, cruise, 0.0)),
                 walk=zeros.walk.at[area, p_req].add(jnp.where(served, walk, 0.0)))
        waiting = q.valid & ~served
        timed_out = waiting & ((t + 1).astype(jnp.float32) - q.time >= self.config.max_wait)
        keep = waiting & ~timed_out

        dest, stay, when, valid, extra = arrivals
        C = q.valid.shape[0]
        all_dest = jnp.concatenate([q.dest, dest])
        all_time = jnp.concatenate([q.time, when])
        all_stay = jnp.concatenate([q.stay, stay])
        all_valid = jnp.concatenate([keep, valid])
        order = jnp.argsort(jnp.where(all_valid, all_time, jnp.inf), stable=True)
        kept = order[:C]
        queue = Queue(dest=all_dest[kept], time=all_time[kept], stay=all_stay[kept], valid=all_valid[kept])
        overflow_slots = all_valid[order[C:]]

        group_of = lambda dests: params.region[dests]  # noqa: E731
        failed = (jnp.zeros((3, 2), jnp.int32).at[group_of(q.dest), period_of(q.time)].add(timed_out.astype(jnp.int32))
                  .at[group_of(all_dest[order[C:]]), period_of(all_time[order[C:]])].add(overflow_slots.astype(jnp.int32)))
        p_now = params.period[jnp.minimum(t, params.period.shape[0] - 1)]
        group_new = group_of(jnp.maximum(dest, 0))
        requests = jnp.zeros((3, 2), jnp.int32).at[group_new, period_of(when)].add(valid.astype(jnp.int32))
        # requests beyond the arrival slots: made and turned away at once (counted under the minute's period)
        requests = requests.at[0, p_now].add(extra)
        failed = failed.at[0, p_now].add(extra)

        # advance to t + 1
        t1 = t + 1
        row = jnp.minimum(t1, L - 1)
        was_full = free == 0
        free = free + departs[row]
        free_since = jnp.where(was_full & (free > 0), t1, free_since)
        en_route = en_route - arrives[row]
        paid = due[row]
        occupancy = 1.0 - free / jnp.maximum(params.capacity, 1)
        spread = jnp.stack([_masked_std(occupancy, params.region == g) for g in range(3)])
        metrics = accumulate(state.metrics, ParkingMetrics(
            requests=requests, parked=m["parked"], failed=failed, cruise=m["cruise"], walk=m["walk"],
            spread=jnp.zeros((3, 2), jnp.float32).at[:, p_now].set(spread),
            minutes=jnp.zeros(2, jnp.int32).at[p_now].set(1), reward=paid, bids=jnp.zeros(3, jnp.int32)))
        nxt = ParkingState(t=t1, steps=state.steps + 1, free=free, free_since=free_since, en_route=en_route,
                           departs=departs, arrives=arrives, due_reward=due, queue=queue, hist=state.hist,
                           metrics=metrics)
        info = dict(team_reward=paid, parked=m["parked"].sum(), failed=failed.sum(), requests=requests.sum(),
                    cruise=m["cruise"].sum(), walk=m["walk"].sum(), parked_core=m["parked"][:2].sum(),
                    failed_core=failed[:2].sum())
        return nxt, info

    # ------------------------------------------------------------------ what agents see
    def features(self, state: ParkingState, params) -> jax.Array:
        """(F, FEATURES) of the state's minute (see `FEATURE_NAMES`)."""
        F = params.num_facilities
        T = params.rate.shape[0]
        tc = jnp.minimum(state.t, T - 1)
        cap = jnp.maximum(params.capacity, 1).astype(jnp.float32)
        q = state.queue
        reach = params.offered[q.dest] & q.valid[:, None]  # (C, F)
        walk = jnp.where(reach, params.walk_min[q.dest], jnp.inf).min(0)
        drive = jnp.where(reach, params.drive_min[q.dest], jnp.inf).min(0)
        cruising = reach & ((state.t.astype(jnp.float32) - q.time) >= 1.0)[:, None]
        minute = (params.minute0 + state.t).astype(jnp.float32)
        cols = [jnp.arange(F) / F, params.region == 0, params.region == 1, params.optimised,
                state.free / cap, jnp.minimum(state.free, 10) / 10.0,
                jnp.full((F,), minute / 1440.0), jnp.full((F,), params.period[tc]),
                jnp.where(jnp.isfinite(walk), walk / WALK_LIMIT_MIN, 1.5),
                reach.sum(0) / 5.0, jnp.where(jnp.isfinite(drive), drive / 5.0, 2.0),
                state.en_route / cap, params.nearby[tc] / 5.0, cruising.sum(0) / 5.0]
        return jnp.stack([jnp.broadcast_to(jnp.asarray(c, jnp.float32), (F,)) for c in cols], -1)

    def observe(self, state: ParkingState, params) -> jax.Array:
        H, F, D = state.hist.shape
        return jnp.transpose(state.hist, (1, 0, 2)).reshape(F, H * D)

    def observation_spec(self, params) -> Spec:
        return Spec((params.num_facilities, self.config.history * (FEATURES + 1)), jnp.float32)

    def action_spec(self, params) -> Spec:
        return Spec((params.num_facilities,), jnp.float32)

    def global_state(self, state: ParkingState, params) -> jax.Array:
        feats = state.hist[-1]
        return jnp.concatenate([feats[:, 4], feats[:, 11], feats[:, 9], feats[0, 6:8]])

    def agents(self, params) -> Agents:
        """The learners are the optimised facilities (static ones follow their rule),
        the nodes of the facility graph."""
        graph = dict(neighbours=params.neighbours, neighbour_mask=params.neighbour_mask,
                     kind=params.optimised.astype(jnp.int32), region=params.region, history=self.config.history,
                     focus=FEATURE_NAMES.index("offered"))
        return Agents(params.optimised, graph=graph)

    # ------------------------------------------------------------------ metrics
    def episode_metrics(self, state: ParkingState, params) -> dict:
        return summarise(state.metrics)

    def step_stats(self, info, reward, params) -> dict:
        return {"reward": info["team_reward"] * params.optimised.sum(), "team": info["team_reward"], "parked": info["parked"],
                "failed": info["failed"], "cruise": info["cruise"], "walk": info["walk"],
                "parked_core": info["parked_core"], "failed_core": info["failed_core"]}

    def training_metrics(self, sums: dict, num_envs: int) -> dict:
        resolved = jnp.maximum(sums["parked"] + sums["failed"], 1)
        return {"reward": sums["team"] / num_envs, "success_rate": sums["parked"] / resolved,
                "cruise_min": sums["cruise"] / jnp.maximum(sums["parked"], 1),
                "success_rate_core": sums["parked_core"] / jnp.maximum(sums["parked_core"] + sums["failed_core"], 1)}


FEATURE_NAMES = ("id", "cbd", "southbank", "optimised", "free_share", "free_bays", "time_of_day", "peak",
                 "nearest_walk", "offered", "eta", "en_route", "nearby_demand", "cruising")
assert len(FEATURE_NAMES) == FEATURES


def _masked_std(x, mask):
    n = jnp.maximum(mask.sum(), 1)
    mean = jnp.where(mask, x, 0.0).sum() / n
    return jnp.sqrt(jnp.where(mask, (x - mean) ** 2, 0.0).sum() / n)


AREAS = ("cbd", "southbank", "periphery")  # by the request's destination (the facility's, for spreads)
AREA_GROUPS = {"cbd": (0,), "southbank": (1,), "periphery": (2,), "core": (0, 1)}  # reported areas -> region indices
PERIODS = ("offpeak", "peak")


def summarise(m: ParkingMetrics) -> dict:
    """Success rate (allocated / resolved), mean cruise and walk minutes, occupancy spread; overall,
    per area (`_cbd`, `_southbank`, `_periphery`, and `_core` = CBD + Southbank, the optimised
    facilities' areas) and per area x period (`success_rate_core_peak`, ...)."""
    out = {}
    resolved = m.parked + m.failed

    def put(suffix, rows, period=slice(None)):
        parked, res = m.parked[rows, period].sum(), resolved[rows, period].sum()
        out[f"success_rate{suffix}"] = parked / jnp.maximum(res, 1)
        out[f"cruise_min{suffix}"] = m.cruise[rows, period].sum() / jnp.maximum(parked, 1)
        out[f"walk_min{suffix}"] = m.walk[rows, period].sum() / jnp.maximum(parked, 1)

    put("", slice(None))
    for area, regions in AREA_GROUPS.items():
        rows = slice(regions[0], regions[-1] + 1)
        put(f"_{area}", rows)
        for p, period in enumerate(PERIODS):
            put(f"_{area}_{period}", rows, slice(p, p + 1))
    for a, area in enumerate(AREAS):
        for p, period in enumerate(PERIODS):
            out[f"spread_{area}_{period}"] = m.spread[a, p] / jnp.maximum(m.minutes[p], 1)
        out[f"spread_{area}"] = m.spread[a].sum() / jnp.maximum(m.minutes.sum(), 1)
    out["occupancy_spread"] = m.spread.sum() / jnp.maximum(len(AREAS) * m.minutes.sum(), 1)
    out["bids_at_top"] = m.bids[1] / jnp.maximum(m.bids[0], 1)  # saturated bids: a policy there is a fixed rule
    out["bids_at_bottom"] = m.bids[2] / jnp.maximum(m.bids[0], 1)
    out.update(reward=m.reward, requests=m.requests.sum().astype(jnp.float32),
               parked=m.parked.sum().astype(jnp.float32), failed=m.failed.sum().astype(jnp.float32))
    return out


def parked_trace(policy, env: ParkingEnv, params, key) -> jax.Array:
    """(T, F) vehicles in each facility's bays or driving to them at the start of every minute of one episode."""
    from ...core.rollout import run_episode

    _, parked = run_episode(policy, env, params, key, record=lambda s, a, i: params.capacity - s.free)
    return parked
