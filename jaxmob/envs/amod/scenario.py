"""AMoD benchmark cities as region-level fleet scenarios.

The public AMoD benchmark (RL4AMOD, graph-meta-rl-for-amod) publishes, per
city, a 3-hour window of aggregated ride-hailing demand (`scenario_<city>.json`:
per-minute OD rates with travel times and prices, fleet size per hour,
rebalancing times per hour) and a calibration (`demand_ratio`, `json_hr`,
`beta`, sometimes `test_tstep`). We read them as the benchmark's own simulator
does, in our code:

* Regions: all `nlat * nlon` ids (a region may have no demand).
* Steps of `tstep` minutes (3, or the city's `test_tstep`) from minute
  `60 * json_hr`; step k of the window gathers the rows of its minutes.
* Expected requests of a step and OD pair: the sum of the rows' rates times
  the demand ratio. Price: the request-weighted mean price. Trip duration:
  round(request-weighted mean travel time / tstep), at least 1 step; pairs
  with no requests in a step use the rebalancing time.
* Rebalancing time: round(reb_time of hour `json_hr` / tstep), at least 1 step.
* Fleet: `totalAcc` of hour json_hr + round(tstep / 2 * horizon / 60),
  int(acc / regions) vehicles in every region (the benchmark drops the remainder).
* Cost of a vehicle travelling one step: beta * tstep.

Evaluation episodes are seeded Poisson draws from the expected requests (the
benchmark draws one per episode too): 3 validation and 5 test episodes.
Bundled copies (`scenarios/<city>.npz`, built by `write_bundled`) carry the
arrays above, so nothing here needs `../shared` at run time.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...core.errors import LoaderError
from .benchmark import CALIBRATION_FILE, read_benchmark

BUNDLED_DIR = Path(__file__).with_name("scenarios")
DEFAULT_HORIZON = 20  # decision steps per episode (the benchmark's 20 x 3 min = 1 hour)
VALIDATION_SEEDS = (1000, 1001, 1002)
TEST_SEEDS = (2000, 2001, 2002, 2003, 2004)


@dataclass(frozen=True, eq=False)
class AmodScenario:
    """One AMoD city at region level (arrays over the whole demand window)."""

    name: str
    source: str  # provenance: the file and calibration it was built from
    tstep: int  # minutes per step
    start_minute: int  # minute of day of window step 0
    beta: float  # cost per vehicle-minute of driving
    demand_ratio: float
    fleet_hour: int
    demand: np.ndarray  # (S, R, R) float32 expected requests per step
    price: np.ndarray  # (S, R, R) float32
    trip_steps: np.ndarray  # (S, R, R) int32 >= 1
    reb_steps: np.ndarray  # (R, R) int32 >= 1 off the diagonal, 0 on it
    init_idle: np.ndarray  # (R,) int32
    horizon: int = DEFAULT_HORIZON
    validation_days: tuple = tuple(f"val-{s}" for s in VALIDATION_SEEDS)
    test_days: tuple = tuple(f"test-{s}" for s in TEST_SEEDS)
    _drawn: dict = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        per_episode = float(self.demand[: self.horizon + 1].sum())
        return (f"{self.name}: {self.num_regions} regions, {self.fleet:,} vehicles, {self.horizon} steps of "
                f"{self.tstep} min from minute {self.start_minute}, {per_episode:,.0f} expected requests per episode; "
                f"validation {', '.join(self.validation_days)}; test {', '.join(self.test_days)} ({self.source})")

    @property
    def num_regions(self) -> int:
        return int(self.reb_steps.shape[0])

    @property
    def window_steps(self) -> int:
        return int(self.demand.shape[0])

    @property
    def fleet(self) -> int:
        return int(self.init_idle.sum())

    @property
    def step_cost(self) -> float:
        """Cost of one vehicle driving one step."""
        return float(self.beta * self.tstep)

    @property
    def max_steps(self) -> int:
        return int(max(self.trip_steps.max(), self.reb_steps.max()))

    def requests(self, name: str) -> np.ndarray:
        """(horizon + 1, R, R) int32 requests of evaluation episode `name` ('val-1000', 'test-2003', ...):
        a Poisson draw seeded by the number, the same on every machine."""
        if name not in self._drawn:
            kind, _, seed = name.partition("-")
            if kind not in ("val", "test") or not seed.isdigit():
                raise ValueError(f"unknown episode {name!r}; episodes are named val-<seed> or test-<seed>")
            rate = self.demand[: self.horizon + 1]
            self._drawn[name] = np.random.default_rng(int(seed)).poisson(rate).astype(np.int32)
        return self._drawn[name]


# ------------------------------------------------------------------ building from the benchmark files
def _fail(path, problem: str):
    raise LoaderError(f"{path}: {problem}")


def from_json(path, *, tstep: int | None = None, horizon: int = DEFAULT_HORIZON,
              demand_ratio: float | None = None, json_hr: int | None = None, beta: float | None = None) -> AmodScenario:
    """The scenario of one `scenario_<city>.json` (calibration from the file beside it
    unless given; see the module docstring for every rule)."""
    f = read_benchmark(path)
    path, nlat, nlon, city = f.path, f.nlat, f.nlon, f.city
    dem, acc, reb = f.demand, f.total_acc, f.reb_time
    cal = f.calibration or {}
    tstep = int(tstep or cal.get("test_tstep", 3))
    json_hr = int(cal.get("json_hr", 19) if json_hr is None else json_hr)
    ratio = float(cal.get("demand_ratio", 1.0) if demand_ratio is None else demand_ratio)
    beta = float(cal.get("beta", 0.2) if beta is None else beta)
    if tstep < 1 or horizon < 1:
        raise ValueError(f"tstep and horizon must be >= 1, got {tstep}, {horizon}")

    R = nlat * nlon
    start = 60 * json_hr
    minute = dem["time_stamp"].astype(np.int64) - start
    inside = minute >= 0
    if not inside.any():
        _fail(path, f"no demand rows at or after json_hr={json_hr} (minute {start})")
    S = int(minute[inside].max()) // tstep + 1
    if S < horizon + 1:
        _fail(path, f"the demand window has {S} steps of {tstep} min; an episode of horizon={horizon} needs {horizon + 1}")
    k = minute[inside] // tstep
    o, d = dem["origin"][inside].astype(np.int64), dem["destination"][inside].astype(np.int64)
    rate = dem["demand"][inside] * ratio
    requests, revenue, minutes = (np.zeros((S, R, R)) for _ in range(3))
    np.add.at(requests, (k, o, d), rate)
    np.add.at(revenue, (k, o, d), rate * dem["price"][inside])
    np.add.at(minutes, (k, o, d), rate * dem["travel_time"][inside])
    some = requests > 0
    price = np.where(some, revenue / np.where(some, requests, 1.0), 0.0)

    hour = reb["time_stamp"].astype(np.int64)
    if not (hour == json_hr).any():
        _fail(path, f"'rebTime' has no rows for hour {json_hr}")
    at = hour == json_hr
    reb_min = np.zeros((R, R))
    reb_min[reb["origin"][at].astype(np.int64), reb["destination"][at].astype(np.int64)] = reb["reb_time"][at]
    reb_steps = np.maximum(1, np.round(reb_min / tstep)).astype(np.int32)
    np.fill_diagonal(reb_steps, 0)
    trip = np.maximum(1, np.round(minutes / np.where(some, requests, 1.0) / tstep)).astype(np.int32)
    trip = np.where(some, trip, np.maximum(reb_steps, 1)[None]).astype(np.int32)

    fleet_by_hour = {int(h): int(a) for h, a in zip(acc["hour"], acc["acc"])}
    fleet_hour = json_hr + int(round(tstep / 2 * horizon / 60))
    if fleet_hour not in fleet_by_hour:
        _fail(path, f"'totalAcc' has no fleet for hour {fleet_hour}; it has hours {sorted(fleet_by_hour)}")
    per_region = fleet_by_hour[fleet_hour] // R
    source = f"{path.name} (+ {CALIBRATION_FILE} entry {city!r})" if cal else path.name
    return AmodScenario(
        name=city, source=source, tstep=tstep, start_minute=start, beta=beta, demand_ratio=ratio,
        fleet_hour=fleet_hour, demand=requests.astype(np.float32), price=price.astype(np.float32),
        trip_steps=trip, reb_steps=reb_steps, init_idle=np.full(R, per_region, np.int32), horizon=horizon)


# ------------------------------------------------------------------ bundled copies
_ARRAYS = ("demand", "price", "trip_steps", "reb_steps", "init_idle")
_META = ("name", "source", "tstep", "start_minute", "beta", "demand_ratio", "fleet_hour", "horizon")


def save(scenario: AmodScenario, path) -> None:
    """Write `scenario` as a compressed `.npz` (arrays) with its metadata inside."""
    path = Path(path)
    meta = json.dumps({k: getattr(scenario, k) for k in _META}, sort_keys=True)
    with path.open("wb") as f:  # a file object keeps np.savez from appending a suffix
        np.savez_compressed(f, meta=np.frombuffer(meta.encode(), np.uint8),
                            **{k: getattr(scenario, k) for k in _ARRAYS})


def load_file(path) -> AmodScenario:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"AMoD scenario file {path} does not exist")
    try:
        with np.load(path) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            arrays = {k: z[k] for k in _ARRAYS}
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: not an AMoD scenario written by jaxmob ({err})") from err
    return AmodScenario(**meta, **arrays)


def bundled() -> list:
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.npz"))


@lru_cache(maxsize=None)
def load(name: str) -> AmodScenario:
    """A bundled city by name (`nyc_brooklyn`, ...) or an `.npz` path."""
    if name.endswith(".npz"):
        return load_file(name)
    if name not in bundled():
        raise ValueError(f"unknown AMoD scenario {name!r}; bundled: {', '.join(bundled())} (or an .npz path)")
    return load_file(BUNDLED_DIR / f"{name}.npz")


def write_bundled(source_dir, out_dir=BUNDLED_DIR) -> list:
    """Rebuild every bundled city from the benchmark files in `source_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(Path(source_dir).glob("scenario_*.json")):
        scenario = from_json(path)
        save(scenario, out_dir / f"{scenario.name}.npz")
        written.append(out_dir / f"{scenario.name}.npz")
    return written
