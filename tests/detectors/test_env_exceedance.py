"""Exceedance on real data: Dongsi PM2.5 daily means, gas-turbine NOx hours, O2 correction."""

import csv
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest

from contract.records import Reading
from detectors.env import StationMonitor, analyze_series, final_clues
from detectors.env_config import EnvConfig, StationInfo
from detectors.env_io import read_beijing

DONGSI = "samples/sensors/beijing_dongsi_2013-2017.csv"
TURBINE = "samples/sensors/gas_turbine_co_nox.csv"
NO_PNG = EnvConfig(evidence=False)


def expected_pm25_days(since: date) -> tuple[set[date], set[date]]:
    """Independent day means straight from the CSV: (exceeding days, days with < 20 hours)."""
    sums: dict[date, list[float]] = defaultdict(list)
    with open(DONGSI, newline="") as fh:
        for row in csv.DictReader(fh):
            day = date(int(row["year"]), int(row["month"]), int(row["day"]))
            if row["PM2.5"] != "NA" and day >= since:
                sums[day].append(float(row["PM2.5"]))
    over = {d for d, v in sums.items() if len(v) >= 20 and sum(v) / len(v) > 75}
    short = {d for d, v in sums.items() if len(v) < 20 and sum(v) / len(v) > 75}
    return over, short


def runs(days: set[date]) -> int:
    return sum(1 for d in days if d - timedelta(days=1) not in days)


@pytest.fixture(scope="module")
def dongsi_final() -> list:
    info = StationInfo(id="dongsi", adopted_from=date(2013, 1, 1))
    return final_clues(analyze_series(read_beijing(DONGSI, "dongsi"), info, NO_PNG))


def test_pm25_daily_exceedances_match_independent_groupby(dongsi_final: list) -> None:
    over, short = expected_pm25_days(date(2013, 1, 1))
    clues = [c for c in dongsi_final if c.rule == "GB3095-2012/II/a34004/24h"]
    assert len(clues) == runs(over)  # one clue per episode of consecutive days
    assert sum(c.metrics["exceeding_windows"] for c in clues) == len(over)
    flagged_days = {datetime.fromisoformat(w["window"]).date()
                    for c in clues for w in c.metrics["windows"]}
    assert flagged_days <= over
    assert not flagged_days & short  # days with < 20 valid hours give no verdict
    for c in clues:
        assert c.kind == "exceedance" and c.metrics["limit"] == 75
        assert all(w["valid_hours"] >= 20 and w["mean"] > 75 for w in c.metrics["windows"])
        assert c.start.utcoffset() == timedelta(hours=8) and c.start.hour == 0


def test_standard_not_in_force_before_its_date() -> None:
    readings = [r for r in read_beijing(DONGSI, "dongsi") if r.time.year >= 2015
                and (r.time.year, r.time.month) <= (2016, 3)]
    final = final_clues(analyze_series(readings, StationInfo(id="dongsi"), NO_PNG))
    days = {datetime.fromisoformat(w["window"]).date() for c in final
            if c.rule == "GB3095-2012/II/a34004/24h" for w in c.metrics["windows"]}
    over, _ = expected_pm25_days(date(2016, 1, 1))
    assert days and days == {d for d in over if d <= date(2016, 3, 31)}


def test_gas_turbine_hourly_nox() -> None:
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    with open(TURBINE, newline="") as fh:
        nox = [float(r["Nitrogen oxides"]) for _, r in zip(range(400), csv.DictReader(fh),
                                                            strict=False)]
    readings = [Reading(station="gt1", time=t0 + timedelta(hours=i), period="hour",
                        values={"a21002": v}) for i, v in enumerate(nox)]
    info = StationInfo(id="gt1", st="31", standard="GB13223-2011/gas-turbine")
    final = [c for c in final_clues(analyze_series(readings, info, NO_PNG))
             if c.kind == "exceedance"]
    hours = {i for i, v in enumerate(nox) if v > 50}
    episodes = sum(1 for i in hours if i - 1 not in hours)
    assert len(final) == episodes > 0
    assert sum(c.metrics["exceeding_windows"] for c in final) == len(hours)
    assert all(c.metrics["o2_ref"] == 15 and c.metrics["o2_corrected"] is False for c in final)


def minute_readings(start: datetime, minutes: int, so2: float, o2: float) -> list[Reading]:
    return [Reading(station="p1", time=start + timedelta(minutes=i), period="minute",
                    values={"a21026": so2, "a19001": o2}) for i in range(minutes)]


def test_o2_corrected_minute_data_and_45_minute_rule() -> None:
    info = StationInfo(id="p1", st="31")  # default: GB 13223 coal existing, SO2 200 @ 6 %
    t0 = datetime(2020, 5, 1, 8, tzinfo=UTC)
    series = (minute_readings(t0, 60, 150.0, 9.0)  # 187.5 corrected: compliant
              + minute_readings(t0 + timedelta(hours=1), 60, 150.0, 11.0)  # 225: exceeds
              + minute_readings(t0 + timedelta(hours=2), 40, 150.0, 11.0)  # 40 min: no verdict
              + minute_readings(t0 + timedelta(hours=3), 1, 10.0, 9.0))
    final = [c for c in final_clues(analyze_series(series, info, NO_PNG))
             if c.kind == "exceedance"]
    assert len(final) == 1
    clue = final[0]
    assert clue.metrics["exceeding_windows"] == 1
    assert clue.metrics["window_mean"] == pytest.approx(225.0)
    assert clue.metrics["valid_minutes"] == 60 and clue.metrics["o2_corrected"] is True
    assert clue.start == t0 + timedelta(hours=1) and clue.state == "closed"


def test_lifecycle_events_share_one_clue_id() -> None:
    mon = StationMonitor(StationInfo(id="p1", st="31"), NO_PNG)
    t0 = datetime(2020, 5, 1, 0, tzinfo=UTC)
    events = []
    for h, so2 in enumerate([100, 250, 260, 270, 100]):
        events += mon.observe(Reading(station="p1", time=t0 + timedelta(hours=h),
                                      period="hour", values={"a21026": so2, "a19001": 6.0}))
    ex = [e for e in events if e.kind == "exceedance"]
    assert [e.state for e in ex] == ["open", "update", "update", "closed"]
    assert len({e.clue_id for e in ex}) == 1
    assert ex[-1].end == t0 + timedelta(hours=4)
