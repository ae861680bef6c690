"""The City of Melbourne's historic parking event files as replayable days.

The files (one row per sensor event: DeviceId, ArrivalTime, DepartureTime,
DurationSeconds, StreetMarker, Sign, Area, StreetId, StreetName,
BetweenStreet1, BetweenStreet2, Side Of Street, In Violation, Vehicle Present)
replay real arrivals. Two eras are read: the 2017 files have no `Vehicle Present`
column (every row is a vehicle's stay) and start with a byte-order mark; the later
ones have it:

* a row with Vehicle Present true (or any row of a file without the column) is a vehicle that parked at the bay with
  that StreetMarker: its request is made at ArrivalTime, its destination is
  that bay's facility and its stay is DepartureTime - ArrivalTime (or
  DurationSeconds where a time is missing);
* rows with Vehicle Present false are the sensor's vacancy records (skipped,
  counted);
* bad rows are dropped and counted by reason, never guessed: unreadable
  times, a departure before the arrival (the portal documents negative
  durations), a street marker that is no bay of the scenario, an arrival
  outside the simulated day (07:00-21:00).

Days are split in date order into training, validation and test days;
`fit_model` re-estimates the request model (rates per period, destinations)
from the training days only.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

COLUMNS = ("DeviceId", "ArrivalTime", "DepartureTime", "DurationSeconds", "StreetMarker", "Sign", "Area", "StreetId",
           "StreetName", "BetweenStreet1", "BetweenStreet2", "Side Of Street", "In Violation", "Vehicle Present")
REQUIRED = ("ArrivalTime", "DepartureTime", "DurationSeconds", "StreetMarker")  # `Vehicle Present` only after 2017
TIME_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")


class EventFileError(ValueError):
    """An event file that cannot be read at all (its message names the file and the problem)."""


@dataclass
class EventDays:
    """Replay tables by date (`dest`, `stay`, `time` arrays of shape (T, K); -1 marks an empty slot)."""

    days: dict  # date (YYYY-MM-DD) -> (dest, stay, time)
    dropped: Counter = field(default_factory=Counter)
    rows: int = 0
    source: str = ""

    def split(self, validation: int = 1, test: int = 1) -> tuple:
        """(training, validation, test) date lists in date order: the last `test` dates are test days,
        the `validation` before them validation days, the rest training days."""
        dates = sorted(self.days)
        if len(dates) < validation + test + 1:
            raise EventFileError(f"{self.source}: {len(dates)} day(s) of events; training, {validation} validation and "
                                 f"{test} test day(s) need at least {validation + test + 1}")
        return dates[:-(validation + test)], dates[-(validation + test):-test], dates[-test:]

    def report(self) -> str:
        kept = sum(int((d[0] >= 0).sum()) for d in self.days.values())
        parts = [f"{self.source}: {self.rows:,} rows, {kept:,} arrivals kept on {len(self.days)} day(s)"]
        parts += [f"dropped {n:,} ({why})" for why, n in sorted(self.dropped.items()) if n]
        return "; ".join(parts)


def _parse_times(values) -> "pd.Series":  # noqa: F821
    import pandas as pd

    s = pd.Series(values, dtype="string")
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    for fmt in TIME_FORMATS:
        todo = out.isna() & s.notna()
        if not todo.any():
            break
        out[todo] = pd.to_datetime(s[todo], format=fmt, errors="coerce")
    return out


def _truthy(values) -> np.ndarray:
    import pandas as pd

    s = pd.Series(values).astype("string").str.strip().str.lower()
    return s.isin(["true", "1", "yes", "t"]).to_numpy()


def read_events(path, scenario, max_arrivals: int | None = None) -> EventDays:
    """Replayable days of `scenario` (a `ParkingScenario`) from one event CSV (see the module doc).

    `max_arrivals` caps the slots per minute (None: the busiest minute's count, so nothing is cut);
    arrivals beyond it are dropped and counted."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise EventFileError(f"{path}: no such file")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], on_bad_lines="skip", encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise EventFileError(f"{path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise EventFileError(f"{path}: not a readable CSV file ({type(e).__name__}: {e})") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise EventFileError(f"{path}: missing column(s) {', '.join(missing)}; an event file has {', '.join(COLUMNS)}")
    with path.open("rb") as fh:
        lines = sum(1 for _ in fh) - 1
    out = EventDays(days={}, rows=lines, source=str(path))
    if lines > len(df):
        out.dropped["malformed row"] += lines - len(df)
    present = _truthy(df["Vehicle Present"]) if "Vehicle Present" in df.columns else np.ones(len(df), bool)
    out.dropped["vacancy record (Vehicle Present false)"] += int((~present).sum())
    df = df[present]
    arrive = _parse_times(df["ArrivalTime"])
    depart = _parse_times(df["DepartureTime"])
    seconds = pd.to_numeric(df["DurationSeconds"], errors="coerce")
    stay_s = (depart - arrive).dt.total_seconds().where(depart.notna() & arrive.notna(), seconds)
    bad_time = arrive.isna().to_numpy()
    out.dropped["unreadable arrival time"] += int(bad_time.sum())
    bad_stay = ~bad_time & ~(stay_s.to_numpy() > 0)
    out.dropped["departure not after arrival, or no duration"] += int(bad_stay.sum())
    facility_of = dict(zip(scenario.bay_marker.astype(str), scenario.bay_facility.astype(int)))
    fac = df["StreetMarker"].astype("string").str.strip().map(facility_of)
    unknown = ~bad_time & ~bad_stay & fac.isna().to_numpy()
    out.dropped["street marker not a bay of the scenario"] += int(unknown.sum())
    ok = ~bad_time & ~bad_stay & ~unknown
    arrive, stay_s, fac = arrive[ok], stay_s[ok], fac[ok].astype(int)
    minute = (arrive.dt.hour * 60 + arrive.dt.minute + arrive.dt.second / 60.0).to_numpy()
    inside = (minute >= scenario.day_start) & (minute < scenario.day_end)
    out.dropped["arrival outside the simulated day"] += int((~inside).sum())
    minute, stay_min = minute[inside] - scenario.day_start, np.ceil(stay_s.to_numpy()[inside] / 60.0).astype(np.int32)
    dates = arrive.dt.strftime("%Y-%m-%d").to_numpy()[inside]
    fac = fac.to_numpy()[inside]
    T = scenario.minutes
    for date in sorted(set(dates)):
        sel = dates == date
        order = np.argsort(minute[sel], kind="stable")
        m, f, s = minute[sel][order], fac[sel][order], stay_min[sel][order]
        row = np.floor(m).astype(int)
        rank = np.arange(len(row)) - np.searchsorted(row, row)  # position within its minute
        K = max_arrivals or int(np.bincount(row).max())
        cut = rank >= K
        if cut.any():
            out.dropped[f"beyond {K} arrivals in one minute"] += int(cut.sum())
        keep = ~cut
        dest = np.full((T, K), -1, np.int32)
        stay = np.zeros((T, K), np.int32)
        when = np.zeros((T, K), np.float32)
        dest[row[keep], rank[keep]] = f[keep]
        stay[row[keep], rank[keep]] = s[keep]
        when[row[keep], rank[keep]] = m[keep] - row[keep]
        out.days[date] = (dest, stay, when)
    if not out.days:
        raise EventFileError(f"{path}: no usable arrival events ({out.report()})")
    return out


def fit_model(scenario, events: EventDays, dates) -> "ParkingScenario":  # noqa: F821
    """`scenario` with its request model (rates per period, destination weights per period) estimated
    from the arrivals of `dates` (the training days)."""
    period = scenario.period_of(np.arange(scenario.day_start, scenario.day_end))
    F = scenario.num_facilities
    counts = np.zeros((2, F))
    for d in dates:
        dest = events.days[d][0]
        for p in (0, 1):
            v = dest[period == p]
            counts[p] += np.bincount(v[v >= 0], minlength=F)
    minutes = np.array([(period == 0).sum(), (period == 1).sum()]) * len(dates)
    rates = counts.sum(1) / np.maximum(minutes, 1)
    weights = (counts + 0.5) / (counts + 0.5).sum(1, keepdims=True)
    return replace(scenario, rates=rates, dest_weights=weights,
                   source=scenario.source + f"; request model fitted to {len(dates)} training day(s) of {events.source}")
