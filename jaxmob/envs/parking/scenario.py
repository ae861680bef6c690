"""The Melbourne on-street parking scenario: facilities from real bay sensors, a calibrated request model.

Real (City of Melbourne bay sensors, a Saturday in September 2018):
* every bay's position and street marker, and its postcode (the GIS join);
* the occupancy of every bay at 11:18 and at 16:38.

Built here from them:
* facilities: the bays of one postcode within a 150 m span (complete-linkage
  clusters of the bay positions, about a block face each), with their real
  bay counts and centroid;
* areas: postcode 3000 is the CBD and 3006 Southbank (the optimised core,
  as in the paper); every other postcode is the static periphery;
* walking distance between facilities: great-circle x 1.3 (the street-grid
  detour), and the driving time a cruising vehicle needs.

Modelled (documented, calibrated, not observed):
* requests arrive as a Poisson process with one rate off-peak (07:00-10:00 and
  14:00-21:00) and one at the Saturday midday peak (10:00-14:00; with the peak
  running to 16:00 no positive off-peak rate fits the fall from 1,613 parked at
  11:18 to 1,411 at 16:38); a request's destination is a
  facility drawn in proportion to that facility's real occupied bays at 11:18
  (peak) or 16:38 (off-peak), plus one half;
* stays follow a fixed distribution of 15 min to 4 h (mean 85.5 min), like the
  1P/2P signs of the CBD;
* the two rates solve the infinite-server occupancy equations so the expected
  number of parked vehicles at 11:18 and 16:38 equals the real counts; then
  simulation (the nearest-free-bay rule, capacity-bound) corrects the rates and
  each area's share of the destinations until the simulated vehicles parked
  in the CBD, Southbank and the periphery at both times match the snapshots
  within 2%.

Stressed regimes (modelled stresses on the real supply, built from the
calibrated Saturday by `stressed_scenarios`), where the allocation rule
decides who parks:
* `melbourne-weekday-peak`: the midday peak's request rate scaled up (the
  destinations and the off-peak unchanged) until FIFO parks `STRESS_TARGET`
  (85%) of the CBD's peak requests, a weekday-like lunchtime;
* `melbourne-southbank-event`: an evening event (17:00-20:00, the scenario's
  "peak" period) adding requests for Southbank, spread over its facilities by
  bays, to the off-peak demand until FIFO parks 85% of Southbank's requests in
  the event window; the day has no midday peak (the off-peak model all day).
The scale is found by bisection on simulated days (FIFO, 2 seeded days).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...core import geometry

BUNDLED_DIR = Path(__file__).resolve().parent / "scenarios"
SNAPSHOT_FILES = {"am": "sensors_T11-18.csv", "pm": "sensors_T16-38.csv"}
JOINED_FILE = "sensors_sat_11am_with_postcodes.csv"
SNAPSHOT_MINUTES = {"am": 11 * 60 + 18, "pm": 16 * 60 + 38}
DAY_START, DAY_END = 7 * 60, 21 * 60
PEAK = (10 * 60, 14 * 60)
STRESS_TARGET = 0.85  # FIFO's success in the stressed area and window of a stressed scenario
EVENT_WINDOW = (17 * 60, 20 * 60)
CORE_POSTCODES = {3000: 0, 3006: 1}  # CBD, Southbank
REGION_NAMES = ("CBD", "Southbank", "periphery")
STAY_MINUTES = np.array([15, 30, 60, 120, 180, 240], np.int32)
STAY_PROBS = np.array([0.10, 0.20, 0.30, 0.25, 0.10, 0.05])
FACILITY_SPAN_M = 150.0
DETOUR = 1.3


class ScenarioError(ValueError):
    """A sensor file that cannot make a scenario (its message names the file and the problem)."""


PARKING_EARTH_RADIUS_M = 6_371_000.0  # the radius the bundled Melbourne scenario was built with


def haversine_m(lat1, lon1, lat2, lon2):
    return geometry.haversine_m(lat1, lon1, lat2, lon2, radius_m=PARKING_EARTH_RADIUS_M)


@dataclass(frozen=True, eq=False)
class ParkingScenario:
    """Facilities, their areas and the request model of one city (see the module doc)."""

    name: str
    lat: np.ndarray  # (F,) facility centroid
    lon: np.ndarray
    capacity: np.ndarray  # (F,) int bays
    postcode: np.ndarray  # (F,) int
    region: np.ndarray  # (F,) 0 CBD, 1 Southbank, 2 periphery
    occupied_am: np.ndarray  # (F,) real occupied bays at 11:18
    occupied_pm: np.ndarray  # (F,) real occupied bays at 16:38
    bay_marker: np.ndarray  # (B,) street marker of every bay (str)
    bay_facility: np.ndarray  # (B,) its facility
    rates: np.ndarray  # (2,) requests per minute: off-peak, peak
    dest_weights: np.ndarray  # (2, F) destination distribution: off-peak, peak
    stay_minutes: np.ndarray = field(default_factory=lambda: STAY_MINUTES.copy())
    stay_probs: np.ndarray = field(default_factory=lambda: STAY_PROBS.copy())
    day_start: int = DAY_START
    day_end: int = DAY_END
    peak: tuple = PEAK
    source: str = ""
    events: str = ""  # an event file whose real days replace the model's validation and test days

    validation_days = tuple(f"val-{i}" for i in range(3))
    test_days = tuple(f"test-{i}" for i in range(5))

    def day(self, name: str) -> tuple:
        """A seeded day of the request model (`val-i`, `test-i`; `train-i` for anything else):
        (dest, stay, time) replay tables of shape (T, K), -1 marking empty slots."""
        kind, _, index = name.partition("-")
        offsets = {"val": 1_000, "test": 2_000, "train": 0}
        if kind not in offsets or not index.isdigit():
            raise ScenarioError(f"unknown day {name!r}: model days are named val-<i>, test-<i> or train-<i>")
        rng = np.random.default_rng(offsets[kind] + int(index))
        T = self.minutes
        period = self.period_of(np.arange(self.day_start, self.day_end))
        counts = rng.poisson(self.rates[period])
        K = max(int(counts.max()), 1)
        dest = np.full((T, K), -1, np.int32)
        stay = np.zeros((T, K), np.int32)
        when = np.zeros((T, K), np.float32)
        for t in range(T):
            n = counts[t]
            dest[t, :n] = rng.choice(self.num_facilities, n, p=self.dest_weights[period[t]])
            stay[t, :n] = rng.choice(self.stay_minutes, n, p=self.stay_probs)
            when[t, :n] = np.sort(rng.random(n))
        return dest, stay, when

    @property
    def num_facilities(self) -> int:
        return int(self.capacity.shape[0])

    @property
    def optimised(self) -> np.ndarray:
        return self.region < 2

    @property
    def minutes(self) -> int:
        return self.day_end - self.day_start

    def walk_m(self) -> np.ndarray:
        """(F, F) walking metres between facility centroids (great-circle x detour)."""
        return DETOUR * haversine_m(self.lat[:, None], self.lon[:, None], self.lat[None, :], self.lon[None, :])

    def period_of(self, minute_of_day) -> np.ndarray:
        """1 at the peak, 0 off-peak."""
        m = np.asarray(minute_of_day)
        return ((m >= self.peak[0]) & (m < self.peak[1])).astype(np.int32)

    def rate_profile(self) -> np.ndarray:
        """(T,) requests per minute for every minute of the day."""
        return self.rates[self.period_of(np.arange(self.day_start, self.day_end))]

    def expected_occupancy(self) -> np.ndarray:
        """(T, F) expected parked vehicles without capacity limits (infinite-server model): at
        minute t, arrivals of every earlier minute s still parked, rate(s) w(s) P(stay > t - s)."""
        T = self.minutes
        lam = self.rate_profile()[:, None] * self.dest_weights[self.period_of(np.arange(self.day_start, self.day_end))]
        age = np.arange(T)
        survive = (self.stay_probs[None, :] * (self.stay_minutes[None, :] > age[:, None])).sum(1)  # P(stay > age)
        out = np.zeros((T, self.num_facilities))
        for t in range(T):  # minute t counts arrivals of minutes < t
            out[t] = (lam[:t] * survive[t - np.arange(t)][..., None] if t else lam[:0]).sum(0)
        return out

    def __str__(self) -> str:
        core = self.optimised
        return (f"{self.name}: {self.num_facilities} facilities ({int(core.sum())} core: "
                f"{int((self.region == 0).sum())} CBD + {int((self.region == 1).sum())} Southbank), "
                f"{int(self.capacity.sum())} bays, {self.rates[0]:.1f} (off-peak) / {self.rates[1]:.1f} (peak) requests/min")

    # -------------------------------------------------------------- files
    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)
                  if isinstance(getattr(self, f.name), np.ndarray)}
        meta = {k: getattr(self, k) for k in ("name", "day_start", "day_end", "peak", "source", "events")}
        with path.open("wb") as fh:
            np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)
        return path


def load_scenario(path) -> ParkingScenario:
    path = Path(path)
    if not path.exists():
        raise ScenarioError(f"{path}: no such scenario file")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        arrays = {k: z[k] for k in z.files if k != "meta"}
    meta["peak"] = tuple(meta["peak"])
    return ParkingScenario(**meta, **arrays)


def toy_scenario(rate: float = 3.0) -> ParkingScenario:
    """Six facilities about 100 m apart along one street (three core), 1-3 bays each, a 60-minute day
    (09:30-10:30) and short stays: small and overloaded, so every branch of the step runs (tests, demos)."""
    F = 6
    cap = np.array([1, 2, 3, 1, 2, 3], np.int32)
    fac = np.repeat(np.arange(F), cap).astype(np.int32)
    return ParkingScenario(name="toy", lat=-37.81 + 0.0009 * np.arange(F), lon=np.full(F, 144.96), capacity=cap,
                           postcode=np.array([3000, 3000, 3006, 3008, 3008, 3002], np.int32),
                           region=np.array([0, 0, 1, 2, 2, 2], np.int32), occupied_am=cap // 2, occupied_pm=cap // 2,
                           bay_marker=np.array([f"M{i}" for i in range(len(fac))]), bay_facility=fac,
                           rates=np.array([rate, rate * 1.5]), dest_weights=np.full((2, F), 1.0 / F),
                           stay_minutes=np.array([2, 5, 9], np.int32), stay_probs=np.array([0.3, 0.4, 0.3]),
                           day_start=9 * 60 + 30, day_end=10 * 60 + 30)


def bundled() -> list:
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.npz"))


def load(name: str) -> ParkingScenario:
    """A bundled scenario by name, or a `.npz` written by `ParkingScenario.save`."""
    if str(name).endswith(".npz"):
        return load_scenario(name)
    if name not in bundled():
        raise ScenarioError(f"unknown parking scenario {name!r}; bundled: {', '.join(bundled()) or 'none'}")
    return load_scenario(BUNDLED_DIR / f"{name}.npz")


# ------------------------------------------------------------------ building from the sensor files
def read_snapshot(path, marker: str = "st_marker_id") -> "pd.DataFrame":  # noqa: F821
    """One bay-sensor snapshot (`bay_id,st_marker_id,status,location,lat,lon`), validated
    (the GIS join names the marker column `marker`)."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise ScenarioError(f"{path}: no such file")
    try:
        df = pd.read_csv(path, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise ScenarioError(f"{path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{path}: not a readable CSV file ({type(e).__name__}: {e})") from None
    need = {"bay_id", marker, "status", "lat", "lon"}
    missing = need - set(df.columns)
    if missing:
        raise ScenarioError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    if df.empty:
        raise ScenarioError(f"{path}: a header and no bay rows")
    lat, lon = pd.to_numeric(df.lat, errors="coerce").to_numpy(), pd.to_numeric(df.lon, errors="coerce").to_numpy()
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(lat) <= 90) | ~(np.abs(lon) <= 180)  # NaN, inf and impossible coordinates
    bad |= ~df.status.isin(["Present", "Unoccupied"]).to_numpy()
    if bad.any():
        raise ScenarioError(f"{path}: {int(bad.sum())} row(s) with a missing or impossible position (latitude outside "
                            f"[-90, 90], longitude outside [-180, 180]) or a status other than Present/Unoccupied "
                            f"(first at line {int(np.flatnonzero(bad)[0]) + 2})")
    if df.bay_id.duplicated().any():
        raise ScenarioError(f"{path}: bay_id {df.bay_id[df.bay_id.duplicated()].iloc[0]} appears twice")
    return df


def facilities_from_bays(lat, lon, postcode, span_m: float = FACILITY_SPAN_M) -> np.ndarray:
    """(B,) facility index of every bay: complete-linkage clusters of at most `span_m` within a postcode,
    numbered by postcode then west to east."""
    from scipy.cluster.hierarchy import fcluster, linkage

    lat0 = np.radians(np.mean(lat))
    xy = np.c_[np.asarray(lon) * 111_320.0 * np.cos(lat0), np.asarray(lat) * 110_574.0]
    label = np.full(len(lat), -1)
    next_id = 0
    for pc in np.unique(postcode):
        idx = np.flatnonzero(postcode == pc)
        groups = np.zeros(len(idx), int) if len(idx) == 1 else fcluster(linkage(xy[idx], "complete"), span_m, "distance") - 1
        order = np.argsort([xy[idx[groups == g], 0].mean() for g in range(groups.max() + 1)], kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        label[idx] = next_id + rank[groups]
        next_id += len(order)
    return label


def build_from_snapshots(data_dir, name: str = "melbourne", calibrate: bool = True, log=print) -> ParkingScenario:
    """The Melbourne scenario from the shared sensor files (see the module doc)."""
    data_dir = Path(data_dir)
    am = read_snapshot(data_dir / SNAPSHOT_FILES["am"])
    pm = read_snapshot(data_dir / SNAPSHOT_FILES["pm"])
    joined = read_snapshot(data_dir / JOINED_FILE, marker="st_marker_")
    if "mccid_int" not in joined.columns:
        raise ScenarioError(f"{data_dir / JOINED_FILE}: missing column mccid_int (the postcode)")
    postcode_of = dict(zip(joined.bay_id, joined.mccid_int.astype(int)))
    bays = am[am.bay_id.isin(postcode_of)].reset_index(drop=True)
    dropped = len(am) - len(bays)
    if dropped:
        log(f"dropped {dropped} bay(s) of the 11:18 snapshot without a postcode")
    pm_status = dict(zip(pm.bay_id, pm.status))
    missing_pm = int((~bays.bay_id.isin(pm_status)).sum())
    postcode = bays.bay_id.map(postcode_of).to_numpy()
    fac = facilities_from_bays(bays.lat.to_numpy(), bays.lon.to_numpy(), postcode)
    F = int(fac.max()) + 1
    count = lambda mask: np.bincount(fac, weights=mask.astype(float), minlength=F).astype(np.int32)  # noqa: E731
    occupied_am = count((bays.status == "Present").to_numpy())
    occupied_pm = count(bays.bay_id.map(pm_status).eq("Present").to_numpy())  # a bay absent at 16:38 counts free
    fac_postcode = np.array([postcode[fac == f][0] for f in range(F)])
    region = np.array([CORE_POSTCODES.get(int(p), 2) for p in fac_postcode], np.int32)
    weights = np.stack([occupied_pm + 0.5, occupied_am + 0.5]).astype(np.float64)
    weights /= weights.sum(1, keepdims=True)
    scenario = ParkingScenario(
        name=name, lat=np.bincount(fac, bays.lat.to_numpy()) / np.bincount(fac),
        lon=np.bincount(fac, bays.lon.to_numpy()) / np.bincount(fac), capacity=np.bincount(fac).astype(np.int32),
        postcode=fac_postcode.astype(np.int32), region=region, occupied_am=occupied_am, occupied_pm=occupied_pm,
        bay_marker=np.asarray(bays.st_marker_id.astype(str).to_numpy(), dtype=str), bay_facility=fac.astype(np.int32),
        rates=np.zeros(2), dest_weights=weights,
        source=(f"City of Melbourne on-street parking bay sensors (CC BY 4.0), snapshots 11:18 and 16:38 of a "
                f"Saturday in September 2018 via anjsimmo/govhack2018 (MIT); {len(bays)} bays"
                + (f", {missing_pm} absent at 16:38 (counted free)" if missing_pm else "")))
    targets = np.array([occupied_pm.sum(), occupied_am.sum()], float)  # off-peak (16:38), peak (11:18)
    scenario = with_rates(scenario, infinite_server_rates(scenario, targets))
    if calibrate:
        scenario = calibrate_by_simulation(scenario, log=log)
    return scenario


def with_rates(scenario: ParkingScenario, rates) -> ParkingScenario:
    from dataclasses import replace

    return replace(scenario, rates=np.asarray(rates, np.float64))


def snapshot_rows(scenario: ParkingScenario) -> np.ndarray:
    """Minute indices (since the day start) of the 16:38 and 11:18 snapshots."""
    return np.array([SNAPSHOT_MINUTES["pm"], SNAPSHOT_MINUTES["am"]]) - scenario.day_start


def infinite_server_rates(scenario: ParkingScenario, targets) -> np.ndarray:
    """(off-peak, peak) rates whose expected parked totals at 16:38 and 11:18 equal `targets`:
    expected occupancy is linear in the two rates, so two unit-rate solves give a 2 x 2 system."""
    rows = snapshot_rows(scenario)
    A = np.stack([with_rates(scenario, unit).expected_occupancy()[rows].sum(1) for unit in ([1.0, 0.0], [0.0, 1.0])], 1)
    return np.linalg.solve(A, np.asarray(targets, float))


def calibrate_by_simulation(scenario: ParkingScenario, iterations: int = 8, days: int = 4, log=print):
    """Correct the infinite-server model by simulation (nearest-free-bay rule, capacity-bound, mean
    over `days` seeded days) until the vehicles parked at 16:38 and 11:18 match the snapshots, in
    total and per area (CBD, Southbank, periphery): each round scales a period's rate by real / simulated
    total at its snapshot, and the destination mass of each area by real / simulated parked there."""
    from dataclasses import replace

    real = np.stack([region_totals(scenario, scenario.occupied_pm), region_totals(scenario, scenario.occupied_am)])
    for it in range(iterations):
        sim = np.stack([region_totals(scenario, occ) for occ in simulated_snapshot_occupancy(scenario, days)])
        err = np.abs(sim / real - 1).max()
        log(f"calibration round {it}: rates {scenario.rates.round(3)}; parked per area at 16:38 {sim[0].round(0)} "
            f"(real {real[0]}), at 11:18 {sim[1].round(0)} (real {real[1]}): worst {100 * err:.1f}%")
        if err < 0.02:
            break
        ratio = real / np.maximum(sim, 1e-9)  # (period, area)
        weights = scenario.dest_weights * ratio[:, scenario.region]
        weights /= weights.sum(1, keepdims=True)
        rates = scenario.rates * real.sum(1) / sim.sum(1)
        scenario = replace(scenario, rates=rates, dest_weights=weights)
    return scenario


def region_totals(scenario: ParkingScenario, per_facility) -> np.ndarray:
    """(3,) sums of a per-facility quantity over the CBD, Southbank and the periphery."""
    return np.bincount(scenario.region, weights=np.asarray(per_facility, float), minlength=3)


def simulated_snapshot_occupancy(scenario: ParkingScenario, days: int = 4) -> np.ndarray:
    """(2, F) mean simulated vehicles in (or driving to) each facility's bays at 16:38 and 11:18 under
    the nearest-free-bay rule."""
    import jax

    from .baselines import rule_policy
    from .env import ParkingEnv, make_params, parked_trace

    env = ParkingEnv(horizon=scenario.minutes)
    params = make_params(scenario)
    trace = jax.jit(jax.vmap(lambda k: parked_trace(rule_policy, env, params, k)))(
        jax.random.split(jax.random.key(0), days))
    return np.asarray(trace)[:, snapshot_rows(scenario)].mean(0)


def simulated_snapshot_totals(scenario: ParkingScenario, days: int = 4) -> np.ndarray:
    """Mean simulated parked vehicles at 16:38 and 11:18 (all facilities)."""
    return simulated_snapshot_occupancy(scenario, days).sum(-1)


def simulated_metrics(scenario: ParkingScenario, days: int = 2) -> dict:
    """Episode metrics of FIFO (every facility; oldest first, nearest free bay) over `days` seeded
    Poisson days of the scenario's model, averaged."""
    import jax

    from .env import ParkingConfig, make_params

    params = make_params(scenario, static_rule="fifo")
    runs = _fifo_days(ParkingConfig(horizon=scenario.minutes, max_arrivals=128))(params, jax.random.split(jax.random.key(0), days))
    return {k: float(np.mean(v)) for k, v in jax.device_get(runs).items()}


@lru_cache(maxsize=4)
def _fifo_days(config):
    """FIFO episodes, compiled once per env config (a stress search changes only the params)."""
    import jax

    from ...core.rollout import rollout
    from .baselines import rule_policy
    from .env import ParkingEnv

    env = ParkingEnv(config)
    return jax.jit(jax.vmap(lambda params, key: rollout(rule_policy, env, params, key), in_axes=(None, 0)))


def fit_stress(make, metric: str, low: float, high: float, target: float = STRESS_TARGET, steps: int = 7, log=print):
    """`make(x)` for the x in [low, high] at which FIFO's `metric` (falling in x) is `target` (bisection)."""
    for _ in range(steps):
        mid = 0.5 * (low + high)
        scenario = make(mid)
        value = simulated_metrics(scenario)[metric]
        log(f"{scenario.name}: stress {mid:.3f} -> {metric} {value:.3f} (target {target})")
        low, high = (mid, high) if value > target else (low, mid)
    return make(0.5 * (low + high))


def stressed_scenarios(base: ParkingScenario, log=print) -> list:
    """The weekday peak and the Southbank event built from the calibrated Saturday (module doc)."""
    from dataclasses import replace

    def weekday(scale):
        return replace(base, name="melbourne-weekday-peak", rates=base.rates * np.array([1.0, scale]),
                       source=base.source + f"; modelled stress: the midday peak's requests x {scale:.3f} (CBD peak "
                                            f"success {STRESS_TARGET} under FIFO)")

    southbank = np.where(base.region == 1, base.capacity, 0).astype(float)
    southbank /= southbank.sum()

    def event(surge):
        off = base.rates[0]
        peak_weights = (off * base.dest_weights[0] + surge * southbank) / (off + surge)
        return replace(base, name="melbourne-southbank-event", peak=EVENT_WINDOW, rates=np.array([off, off + surge]),
                       dest_weights=np.stack([base.dest_weights[0], peak_weights]),
                       source=base.source + f"; modelled stress: an event 17:00-20:00 adds {surge:.2f} requests/min for "
                                            f"Southbank (by bays) to the off-peak model, no midday peak (Southbank "
                                            f"event success {STRESS_TARGET} under FIFO)")

    return [fit_stress(weekday, "success_rate_cbd_peak", 1.0, 4.0, log=log),
            fit_stress(event, "success_rate_southbank_peak", 0.0, 20.0, log=log)]


def write_bundled(data_dir, out_dir=BUNDLED_DIR, log=print) -> list:
    scenario = build_from_snapshots(data_dir, log=log)
    paths = []
    for s in [scenario, *stressed_scenarios(scenario, log=log)]:
        paths.append(s.save(Path(out_dir) / f"{s.name}.npz"))
        log(str(s))
    return paths
