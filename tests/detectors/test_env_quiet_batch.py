"""The batch fast path (``env_quiet``: quiet runs judged with numpy) gives exactly what
``observe`` gives reading by reading -- same clue events in the same order, same state --
on a year of the real Dongsi record, clean and with planted events (the quality bench's
flatlines, gaps, spikes, near-limit runs) plus flags, impossible values, duplicates and
replayed blocks, cut into batches at arbitrary points; and on a water station whose
NH3-N limit depends on the water temperature (a conditional limit)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from bench.bench_env_quality import inject
from contract.records import Reading
from detectors.env import StationMonitor
from detectors.env_config import EnvConfig, StationInfo
from detectors.env_io import read_beijing

DONGSI = "samples/sensors/beijing_dongsi_2013-2017.csv"
CFG = EnvConfig(evidence=False)
_FULL: list[Reading] = []
START, END = datetime(2015, 7, 1, tzinfo=UTC), datetime(2016, 7, 1, tzinfo=UTC)


class Counting(StationMonitor):
    """Counts the readings that went through ``observe`` one by one."""

    seen = 0

    def observe(self, reading: Reading) -> list:  # type: ignore[override]
        Counting.seen += 1
        return super().observe(reading)


def dongsi() -> list[Reading]:
    if not _FULL:
        _FULL.extend(read_beijing(DONGSI, "dongsi"))
    return _FULL


def year(readings: list[Reading]) -> list[Reading]:
    """2015-07-01 .. 2016-07-01: the GB 3095-2012 limits start on 2016-01-01 inside it."""
    return [r for r in readings if START <= r.time < END]


def roughen(readings: list[Reading], seed: int) -> list[Reading]:
    """Flags, impossible values, duplicates, late readings and replayed 3-hour blocks."""
    rng = random.Random(seed)
    out: list[Reading] = []
    for r in readings:
        r = r.model_copy(deep=True)
        if rng.random() < 0.03:
            code = rng.choice(list(r.values))
            r.flags[code] = rng.choice("MCFD")
        if rng.random() < 0.03:  # a flagged day-long block: flag share
            r.flags = dict.fromkeys(r.values, "M")
        if rng.random() < 0.005:
            r.values[rng.choice(list(r.values))] = -5.0
        out.append(r)
        if rng.random() < 0.01:
            out.append(out[rng.randrange(len(out))])
        if rng.random() < 0.004 and len(out) > 200:  # a resent block of history
            k = rng.randrange(len(out) - 100)
            for j in range(3):
                old = out[k + j]
                out.append(r.model_copy(update={"values": dict(old.values),
                                                "time": r.time + timedelta(minutes=10 * j + 1)}))
    return out


def compare(readings: list[Reading], info: StationInfo, seed: int,
            cfg: EnvConfig = CFG) -> int:
    """observe one by one vs observe_many in random cuts, clues and state compared after
    every cut; returns the number of readings observe saw one by one."""
    one = StationMonitor(info, cfg)
    rng = random.Random(seed)
    Counting.seen = 0
    many = Counting(info, cfg)
    kinds, i = set(), 0
    while i < len(readings):
        n = rng.choice([1, 5, 24, 100, 100, 500, 3000])
        chunk = readings[i:i + n]
        expected = [c for r in chunk for c in one.observe(r)]
        got = many.observe_many(chunk)
        assert [c.model_dump() for c in got] == [c.model_dump() for c in expected]
        assert many.s == one.s
        kinds |= {c.kind for c in expected}
        if rng.random() < 0.2:  # the stream rebuilds monitors from the table now and then
            many = Counting.from_state(many.to_state(), cfg)
        i += n
    assert many.to_state() == one.to_state()
    assert kinds >= {"exceedance", "spike"}
    return Counting.seen


@pytest.mark.parametrize("adopted", [None, date(2013, 1, 1)])
def test_real_year_clean(adopted: date | None) -> None:
    readings = year(dongsi())
    seen = compare(readings, StationInfo(id="dongsi", adopted_from=adopted), 1)
    assert seen < 0.7 * len(readings)  # the fast path took a good part of it


@pytest.mark.parametrize("seed", [4, 5])
def test_real_year_with_planted_events(seed: int) -> None:
    doctored, truth = inject(dongsi(), seed)  # planted over the whole record, one year kept
    assert len({t["kind"] for t in truth if START <= t["start"] < END}) >= 3
    readings = roughen(year(doctored), seed)
    compare(readings, StationInfo(id="dongsi", adopted_from=date(2013, 1, 1)), seed)


def test_conditional_limit_water_station() -> None:
    """NH3-N's limit is 8 mg/L while the water is at most 12 C, else 5: the run may not
    cross a midnight there (day means change in reading order)."""
    rng = random.Random(7)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    readings = []
    for h in range(24 * 120):
        temp = 12 + 6 * ((h // 24) % 20 - 10) / 10 + rng.uniform(-1, 1)
        nh3 = rng.uniform(3.0, 7.5) if (h // 24) % 9 else rng.uniform(6, 9)
        readings.append(Reading(station="W1", time=t0 + timedelta(hours=h), period="hour",
                                values={"w21003": round(nh3, 2), "w01010": round(temp, 1),
                                        "w01018": round(rng.uniform(10, 60), 1)},
                                interval_s=3600))
    info = StationInfo(id="W1", st="32")
    seen = compare_water(readings, info)
    assert seen < 0.5 * len(readings)


def compare_water(readings: list[Reading], info: StationInfo) -> int:
    one = StationMonitor(info, CFG)
    Counting.seen = 0
    many = Counting(info, CFG)
    kinds = set()
    for i in range(0, len(readings), 100):
        expected = [c for r in readings[i:i + 100] for c in one.observe(r)]
        got = many.observe_many(readings[i:i + 100])
        assert [c.model_dump() for c in got] == [c.model_dump() for c in expected]
        assert many.s == one.s
        kinds |= {c.kind for c in expected}
    assert "exceedance" in kinds
    return Counting.seen
