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
* Rebalancing time: round(reb_time of hour `json_hr` / tstep), at least 1 step;
  every ordered pair of regions must have its row for that hour.
* Fleet: `totalAcc` of hour json_hr + round(tstep / 2 * matchings / 60) (20
  matchings), int(acc / regions) vehicles in every region (the benchmark
  drops the remainder).
* Cost of a vehicle travelling one step: beta * tstep.
* An episode is 19 rebalancing decisions between 20 matchings (`horizon` = 19).

Nothing is guessed: a city without its calibration entry needs demand ratio,
hour, step and beta from the caller; a trip or move over a day (which would
also overflow int32 further on) is a `LoaderError` naming it.

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
MAX_MINUTES = 24 * 60  # longest trip or rebalancing time a city may state
DEFAULT_HORIZON = 19  # rebalancing decisions per episode: the benchmark's 20 matchings (x 3 min = 1 hour)
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
        return (f"{self.name}: {self.num_regions} regions, {self.fleet:,} vehicles, {self.horizon + 1} matchings "
                f"({self.horizon} rebalancing decisions) {self.tstep} min apart from minute {self.start_minute}, "
                f"{per_episode:,.0f} expected requests per episode; "
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
    cal = f.calibration
    given = dict(demand_ratio=demand_ratio, json_hr=json_hr, tstep=tstep, beta=beta)
    if cal is None and any(v is None for v in given.values()):
        missing = ", ".join(k for k, v in given.items() if v is None)
        _fail(path, f"city {city!r} has no entry in {CALIBRATION_FILE} beside it; give {missing} explicitly "
                    f"(jaxmob scenarios amod --json FILE --demand-ratio R --json-hr H --tstep MIN --beta B)")
    cal = cal or {}
    tstep = int(tstep or cal.get("test_tstep", 3))  # the benchmark's default step is 3 minutes
    json_hr = int(cal["json_hr"] if json_hr is None else json_hr)
    ratio = float(cal["demand_ratio"] if demand_ratio is None else demand_ratio)
    beta = float(cal["beta"] if beta is None else beta)
    if tstep < 1 or horizon < 1:
        raise ValueError(f"tstep and horizon must be >= 1, got {tstep}, {horizon}")
    if not (np.isfinite(ratio) and ratio > 0 and np.isfinite(beta) and beta >= 0 and 0 <= json_hr < 24):
        _fail(path, f"demand_ratio must be > 0, beta >= 0 and json_hr an hour 0..23; got {ratio}, {beta}, {json_hr}")

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
    reb_min = np.full((R, R), np.nan)
    reb_min[reb["origin"][at].astype(np.int64), reb["destination"][at].astype(np.int64)] = reb["reb_time"][at]
    np.fill_diagonal(reb_min, 0.0)
    missing = np.argwhere(np.isnan(reb_min))
    if len(missing):
        pairs = ", ".join(f"{i}->{j}" for i, j in missing[:5])
        _fail(path, f"'rebTime' lacks {len(missing)} of the {R * (R - 1)} region pairs for hour {json_hr} "
                    f"(e.g. {pairs}); every ordered pair needs its rebalancing time")
    reb_steps = _steps(path, "rebTime.reb_time", reb_min, tstep)
    np.fill_diagonal(reb_steps, 0)
    trip = _steps(path, "demand.travel_time", minutes / np.where(some, requests, 1.0), tstep)
    trip = np.where(some, trip, np.maximum(reb_steps, 1)[None]).astype(np.int32)

    fleet_by_hour = {int(h): int(a) for h, a in zip(acc["hour"], acc["acc"])}
    fleet_hour = json_hr + int(round(tstep / 2 * (horizon + 1) / 60))
    if fleet_hour not in fleet_by_hour:
        _fail(path, f"'totalAcc' has no fleet for hour {fleet_hour}; it has hours {sorted(fleet_by_hour)}")
    per_region = fleet_by_hour[fleet_hour] // R
    source = f"{path.name} (+ {CALIBRATION_FILE} entry {city!r})" if cal else path.name
    return AmodScenario(
        name=city, source=source, tstep=tstep, start_minute=start, beta=beta, demand_ratio=ratio,
        fleet_hour=fleet_hour, demand=requests.astype(np.float32), price=price.astype(np.float32),
        trip_steps=trip, reb_steps=reb_steps, init_idle=np.full(R, per_region, np.int32), horizon=horizon)


def _steps(path, what: str, minutes: np.ndarray, tstep: int) -> np.ndarray:
    """round(minutes / tstep), at least 1, as int32. A time over a day is a named error: no trip
    inside one city takes that long (a unit mistake?), and larger ones would overflow int32.
    Trips longer than an episode are the benchmark's too (Shenzhen has 66-minute ones): their
    vehicles are simply gone for the rest of it."""
    too_long = ~(minutes <= MAX_MINUTES)
    if too_long.any():
        where = tuple(np.argwhere(too_long)[0])
        pair = f"{where[-2]}->{where[-1]}" + (f" at step {where[0]}" if len(where) == 3 else "")
        _fail(path, f"'{what}' of {minutes[where]:g} min ({pair}) is over a day ({MAX_MINUTES} min): "
                    f"not a trip inside one city")
    return np.maximum(1.0, np.round(minutes / tstep)).astype(np.int32)


def read_draws(path, scenario: AmodScenario) -> np.ndarray:
    """(episodes, horizon + 1, R, R) int32 request draws of an `.npz` with array `draws`
    (episode, step, origin, destination), checked against `scenario`."""
    path = Path(path)
    try:
        with np.load(path) as z:
            draws = np.asarray(z["draws"])
    except (OSError, ValueError, KeyError) as err:
        raise LoaderError(f"{path}: not a request-draw file (an .npz with an array 'draws'): {err}") from err
    R, steps = scenario.num_regions, scenario.horizon + 1
    if draws.ndim != 4 or draws.shape[2:] != (R, R) or draws.shape[1] < steps or len(draws) == 0:
        raise LoaderError(f"{path}: 'draws' must be (episodes, >= {steps} steps, {R}, {R}) for {scenario.name}; "
                          f"got {draws.shape}")
    if not np.issubdtype(draws.dtype, np.integer) or (draws < 0).any():
        raise LoaderError(f"{path}: 'draws' must be non-negative integer request counts")
    return draws[:, :steps].astype(np.int32)


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


def write_bundled(source_dir, out_dir=BUNDLED_DIR) -> tuple[list, dict]:
    """Build every `scenario_<city>.json` in `source_dir` into `out_dir`, each city on its
    own: ([written paths], {file name: why it failed})."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, failed = [], {}
    for path in sorted(Path(source_dir).glob("scenario_*.json")):
        try:
            scenario = from_json(path)
        except (LoaderError, ValueError) as err:
            failed[path.name] = str(err)
            continue
        save(scenario, out_dir / f"{scenario.name}.npz")
        written.append(out_dir / f"{scenario.name}.npz")
    if not written and not failed:
        raise LoaderError(f"{source_dir}: no scenario_<city>.json files")
    return written, failed
