"""The batch path as the stream runs it gives exactly the clues of the per-reading path on
real records: the Dongsi 2013-2017 hours, the UCI "Air Quality" hours (Italy, -200 =
missing) and the UCI gas-turbine NOx/CO hours. The oracle is ``observe`` reading by reading
(the detector's own per-reading rules, kept as they were); the batch path is
``EnvProcessor.observe`` (``observe_many``: columns, spike scores and quiet runs in numpy)
over stream-sized batches, with its table value encoded as the stream sends it to the
changelog (at once: the value holds the monitor's live state, which the next batch changes)
and monitors rebuilt from those bytes now and then."""

from __future__ import annotations

import csv
import random
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import orjson

from contract.records import Reading
from detectors.env import StationMonitor
from detectors.env_config import EnvConfig, StationInfo
from detectors.env_io import read_beijing
from streams.env import EnvProcessor, StationEntry

DONGSI = "samples/sensors/beijing_dongsi_2013-2017.csv"
UCI = Path(__file__).resolve().parents[2] / "samples" / "sensors" / "uci_air_quality.csv"
TURBINE = "samples/sensors/gas_turbine_co_nox.csv"
CFG = EnvConfig(evidence=False)
UCI_CODES = {"CO_GT": "a21005", "NO2_GT": "a21004", "C6H6_GT": "a25002"}


def uci() -> list[Reading]:
    tz = timezone(timedelta(hours=1))
    out = []
    with open(UCI, newline="") as fh:
        for row in csv.DictReader(fh):
            if not row.get("Date") or not row.get("Time"):
                continue
            d, m, y = (int(x) for x in row["Date"].split("/"))
            hh = int(row["Time"].split(":")[0])
            values = {code: float(row[col]) for col, code in UCI_CODES.items()
                      if row.get(col) not in (None, "") and float(row[col]) != -200}
            if values:
                out.append(Reading(station="uci", time=datetime(y, m, d, hh, tzinfo=tz),
                                   period="hour", values=values, interval_s=3600))
    return out


def turbine() -> list[Reading]:
    t0 = datetime(2015, 1, 1, tzinfo=UTC)
    with open(TURBINE, newline="") as fh:
        rows = list(csv.DictReader(fh))[:8000]
    return [Reading(station="gt1", time=t0 + timedelta(hours=i), period="hour",
                    values={"a21002": float(r["Nitrogen oxides"]),
                            "a21005": float(r["Carbon monoxide"])}, interval_s=3600)
            for i, r in enumerate(rows)]


def batch_path(readings: list[Reading], info: StationInfo, seed: int) -> list:
    """Clue events of the stream's path: stream-sized batches, table values through JSON."""
    rng = random.Random(seed)
    proc, entry = EnvProcessor(CFG), StationEntry(info)
    stored, out, i = None, [], 0
    while i < len(readings):
        n = rng.choice([1, 7, 100, 500, 2500])
        clues, value = proc.observe(info.id, 0, readings[i:i + n], stored, entry, 0.0)
        out += clues
        as_written = orjson.dumps(value)  # what the stream sends to the changelog
        stored = value
        if rng.random() < 0.15:  # recovered from the changelog: the bytes of then
            stored = orjson.loads(as_written)
        i += n
    return out


def oracle(readings: list[Reading], info: StationInfo) -> list:
    mon = StationMonitor(info, CFG)
    return [c for r in readings for c in mon.observe(r)]


def same(got: list, expected: list) -> None:
    assert [c.model_dump() for c in got] == [c.model_dump() for c in expected]


def test_dongsi_whole_record() -> None:
    readings = list(read_beijing(DONGSI, "dongsi"))
    info = StationInfo(id="dongsi", adopted_from=date(2013, 1, 1))
    expected = oracle(readings, info)
    assert {"exceedance", "flatline"} <= {c.kind for c in expected}
    same(batch_path(readings, info, 1), expected)


def test_uci_air_quality() -> None:
    readings = uci()
    assert len(readings) > 8000
    info = StationInfo(id="uci", utc_offset_hours=1.0)
    expected = oracle(readings, info)
    assert expected
    same(batch_path(readings, info, 3), expected)


def test_gas_turbine() -> None:
    info = StationInfo(id="gt1", st="31", standard="GB13223-2011/gas-turbine")
    readings = turbine()
    expected = oracle(readings, info)
    assert "exceedance" in {c.kind for c in expected}
    same(batch_path(readings, info, 4), expected)
