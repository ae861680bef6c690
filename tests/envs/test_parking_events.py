"""The historic parking event loader: real rows replayed, bad rows counted by reason, clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from jaxmob.envs.parking.events import COLUMNS, EventFileError, fit_model, read_events
from jaxmob.envs.parking.scenario import load

HEADER = ",".join(COLUMNS)


def row(arrive, depart, seconds, marker, present="True"):
    return (f"1234,{arrive},{depart},{seconds},{marker},2P MTR M-SAT 7:30-18:30,CBD,123,COLLINS STREET,"
            f"SWANSTON STREET,RUSSELL STREET,1,False,{present}")


@pytest.fixture(scope="module")
def scenario():
    return load("melbourne")


def test_rows_become_replayed_arrivals_and_bad_rows_are_counted(tmp_path, scenario):
    m0, m1 = scenario.bay_marker[0], scenario.bay_marker[100]
    f0, f1 = int(scenario.bay_facility[0]), int(scenario.bay_facility[100])
    lines = [HEADER,
             row("09/01/2017 08:05:30 AM", "09/01/2017 09:05:30 AM", 3600, m0),  # kept: 08:05.5, 60 min
             row("09/01/2017 08:05:10 AM", "09/01/2017 08:20:10 AM", 900, m1),  # kept, sorted first
             row("09/01/2017 08:06:00 AM", "09/01/2017 08:46:00 AM", 2400, m0, present="False"),  # vacancy
             row("09/01/2017 08:07:00 AM", "09/01/2017 08:01:00 AM", -360, m0),  # negative duration
             row("not a time", "09/01/2017 08:46:00 AM", 60, m0),  # unreadable
             row("09/01/2017 08:07:00 AM", "09/01/2017 08:17:00 AM", 600, "NOPE1"),  # unknown marker
             row("09/01/2017 05:00:00 AM", "09/01/2017 06:00:00 AM", 3600, m0),  # before 07:00
             row("2017-09-02T12:00:00", "2017-09-02T12:30:00", 1800, m1),  # ISO times, the next day
             row("09/03/2017 10:00:00 AM", "", 1200, m0),  # no departure: the duration
             row("09/01/2017 08:05:30 AM", "09/01/2017 09:05:30 AM", 3600, m0) + ",an,extra,field"]  # malformed
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    ev = read_events(path, scenario)
    assert sorted(ev.days) == ["2017-09-01", "2017-09-02", "2017-09-03"]
    dest, stay, when = ev.days["2017-09-01"]
    minute = 8 * 60 + 5 - scenario.day_start
    assert list(dest[minute][dest[minute] >= 0]) == [f1, f0]
    assert list(stay[minute][:2]) == [15, 60]
    np.testing.assert_allclose(when[minute][:2], [10 / 60, 30 / 60], rtol=1e-5)
    assert (dest >= 0).sum() == 2
    d2, s2, _ = ev.days["2017-09-02"]
    assert d2[12 * 60 - scenario.day_start, 0] == f1 and s2[12 * 60 - scenario.day_start, 0] == 30
    assert ev.days["2017-09-03"][1][10 * 60 - scenario.day_start, 0] == 20
    assert ev.dropped == {"vacancy record (Vehicle Present false)": 1, "departure not after arrival, or no duration": 1,
                          "unreadable arrival time": 1, "street marker not a bay of the scenario": 1,
                          "arrival outside the simulated day": 1, "malformed row": 1}
    assert "dropped 1 (malformed row)" in ev.report()
    assert ev.split() == (["2017-09-01"], ["2017-09-02"], ["2017-09-03"])
    fitted = fit_model(scenario, ev, ["2017-09-01"])
    assert fitted.rates[0] == pytest.approx(2 / ((scenario.period_of(np.arange(scenario.day_start, scenario.day_end)) == 0).sum()))
    assert fitted.dest_weights[0].argmax() in (f0, f1)


def test_unusable_event_files_name_the_problem(tmp_path, scenario):
    cases = {"empty.csv": ("", "empty file"),
             "cols.csv": ("DeviceId,ArrivalTime\n1,2\n", "missing column"),
             "none.csv": (HEADER + "\n" + row("bad", "bad", "x", "NOPE"), "no usable arrival events")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(EventFileError, match=message):
            read_events(tmp_path / name, scenario)
    (tmp_path / "bytes.csv").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    with pytest.raises(EventFileError, match="bytes.csv: not a readable CSV"):
        read_events(tmp_path / "bytes.csv", scenario)
    with pytest.raises(EventFileError, match="no such file"):
        read_events(tmp_path / "absent.csv", scenario)
    one_day = tmp_path / "one.csv"
    one_day.write_text(HEADER + "\n" + row("09/01/2017 08:05:30 AM", "09/01/2017 09:05:30 AM", 3600,
                                           scenario.bay_marker[0]) + "\n")
    with pytest.raises(EventFileError, match="need at least 3"):
        read_events(one_day, scenario).split()


def test_the_real_2017_event_file_is_read_with_its_drops_counted(shared_data, scenario):
    """The 2017 format: a byte-order mark and no `Vehicle Present` column (every row is a stay)."""
    path = shared_data / "melbourne-parking" / "events-2017-random-sample.csv"
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"Vehicle Present" not in raw.split(b"\n", 1)[0]
    ev = read_events(path, scenario)
    kept = sum(int((d[0] >= 0).sum()) for d in ev.days.values())
    assert ev.rows == 1000 and kept + sum(ev.dropped.values()) == ev.rows
    assert kept > 0 and "vacancy record (Vehicle Present false)" not in {k for k, v in ev.dropped.items() if v}
    assert ev.dropped["arrival outside the simulated day"] > 0  # the sample spans the whole day
    assert "1,000 rows" in ev.report()
