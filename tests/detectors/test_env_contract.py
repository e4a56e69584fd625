"""The command-line contract of ``offsite env analyze READINGS.jsonl`` (issue 4, item 6)."""

import csv
import json
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contract.records import Reading
from detectors.env import analyze_series, final_clues
from detectors.env_config import EnvConfig, StationInfo
from detectors.env_contract import CONTRACT_KEYS, KINDS, read_jsonl, to_contract
from offsite.cmd_env import app

CST = timezone(timedelta(hours=8))
T0 = datetime(2020, 3, 1, tzinfo=CST)
DONGSI = Path("samples/sensors/beijing_dongsi_2013-2017.csv")


def line(station: str, t: datetime, code: str, value: float, **extra: object) -> str:
    return json.dumps({"station": station, "time": t.isoformat(), "code": code,
                       "value": value, **extra})


def ambient_lines() -> list[str]:
    """Five days of hourly PM2.5 and NO2 at an ambient station with planted problems."""
    out = []
    for h in range(121):
        t = T0 + timedelta(hours=h)
        if 100 <= h < 112:  # 12 hours without data (a logger restart just before)
            if h == 100:
                out.append(json.dumps({"station": "AMB1", "time": (t - timedelta(minutes=30))
                                       .isoformat(), "event": "restart"}))
            continue
        day = h // 24
        pm = {0: 80 + 5 * (h % 5), 1: 95 + 5 * (h % 5)}.get(day, 20 + h % 5)
        flag = "N"
        if day == 2 and 8 <= h % 24 < 16:
            pm, flag = 300, "M"  # flagged values that would push day 3 over the limit
        if h == 115:
            pm = -4.0  # impossible
        no2 = 10 + 10 * (h % 7)
        if 50 <= h < 64:
            no2 = 65.0  # stuck channel, well above the floor
        if h == 90:
            no2 = 900.0  # spike
        out.append(line("AMB1", t, "a34004", pm, st="22",
                        **({"flag": flag} if flag != "N" else {})))
        out.append(line("AMB1", t, "a21004", no2, st="22"))
    return out


def stack_lines() -> list[str]:
    """A flue-gas stack (ST 31) whose NOx breaks NOx = NO*46/30 + NO2 after three hours."""
    out = []
    for h in range(6):
        t = T0 + timedelta(days=10, hours=h)
        nox = 60.0 if h < 3 else 120.0
        for code, v in (("a19001", 8.0), ("a21002", nox), ("a21003", 20.0), ("a21004", 30.0)):
            out.append(line("STACK1", t, code, v, st="31"))
    return out


@pytest.fixture(scope="module")
def contract_out(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("contract")
    src, out = tmp / "readings.jsonl", tmp / "clues.jsonl"
    src.write_text("\n".join(ambient_lines() + stack_lines()) + "\n")
    res = CliRunner().invoke(app, ["analyze", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return [json.loads(x) for x in out.read_text().splitlines()]


def only(clues: list[dict], kind: str, code: object = "any") -> dict:
    found = [c for c in clues if c["kind"] == kind and (code == "any" or c["code"] == code)]
    assert len(found) == 1, (kind, code, found)
    return found[0]


def test_every_clue_has_exactly_the_contract_keys(contract_out: list[dict]) -> None:
    assert contract_out
    for c in contract_out:
        assert tuple(c) == CONTRACT_KEYS
        assert c["kind"] in KINDS
        assert c["station"] in ("AMB1", "STACK1")
        start, end = datetime.fromisoformat(c["start"]), datetime.fromisoformat(c["end"])
        assert start.utcoffset() == end.utcoffset() == timedelta(hours=8)
        assert start <= end
        assert isinstance(c["detail"], dict) and c["detail"]["rule"]
    kinds = {c["kind"] for c in contract_out}
    assert kinds >= {"exceedance", "flatline", "offline", "impossible", "inconsistent",
                     "flag_abuse", "spike"}


def test_daily_exceedance_is_one_clue_over_the_run_of_days(contract_out: list[dict]) -> None:
    ex = only(contract_out, "exceedance", "a34004")
    assert ex["station"] == "AMB1" and ex["standard"] == "GB3095-2012/II"
    assert ex["start"] == "2020-03-01T00:00:00+08:00"
    assert ex["end"] == "2020-03-03T00:00:00+08:00"  # two days, end exclusive
    assert ex["limit"] == 75
    day2 = sum(95 + 5 * (h % 5) for h in range(24, 48)) / 24
    assert ex["value"] == pytest.approx(day2)
    assert [w["valid_hours"] for w in ex["detail"]["windows"]] == [24, 24]
    assert ex["detail"]["metrics"]["exceeding_windows"] == 2


def test_flags_default_to_n_and_flagged_values_are_flag_abuse(contract_out: list[dict]) -> None:
    abuse = [c for c in contract_out if c["kind"] == "flag_abuse"]
    rules = {c["detail"]["rule"] for c in abuse}
    assert rules == {"flag-share/a34004", "flag-mask/GB3095-2012/II/a34004/24h"}
    assert all(c["code"] == "a34004" and c["start"].startswith("2020-03-03") for c in abuse)


def test_quality_clues(contract_out: list[dict]) -> None:
    flat = only(contract_out, "flatline", "a21004")
    assert flat["value"] == 65.0 and flat["detail"]["metrics"]["run_length"] == 14
    assert flat["start"] == (T0 + timedelta(hours=50)).isoformat()
    spike = only(contract_out, "spike", "a21004")
    assert spike["value"] == 900.0 and spike["start"] == (T0 + timedelta(hours=90)).isoformat()
    off = only(contract_out, "offline")
    assert off["code"] is None and off["station"] == "AMB1" and off["value"] == 13 * 3600
    assert off["start"] == (T0 + timedelta(hours=99)).isoformat()
    assert off["end"] == (T0 + timedelta(hours=112)).isoformat()
    assert off["detail"]["metrics"]["logger_restart"] == (
        T0 + timedelta(hours=99, minutes=30)).isoformat()
    imp = only(contract_out, "impossible", "a34004")
    assert imp["value"] == -4.0
    inc = only(contract_out, "inconsistent", "a21002")
    assert inc["station"] == "STACK1" and inc["value"] == 120.0
    assert inc["standard"] == "GB13223-2011/coal-existing"


def test_near_limit_maps_from_the_detector() -> None:
    t0 = datetime(2020, 3, 1, tzinfo=CST)
    readings = [Reading(station="s", time=t0 + timedelta(hours=i), period="hour",
                        values={"a21026": 192.0 + (i % 5), "a19001": 6.0}) for i in range(30)]
    final = final_clues(analyze_series(readings, StationInfo(id="s", st="31"),
                                       EnvConfig(evidence=False)))
    (hug,) = [to_contract(c) for c in final if to_contract(c)["kind"] == "near_limit"]
    assert hug["code"] == "a21026" and hug["limit"] == 200 and hug["value"] == 196.0


def test_lines_of_one_instant_make_one_reading_and_bad_input_fails(tmp_path: Path) -> None:
    t = T0.isoformat()
    rows = [json.dumps({"station": "A", "st": "31", "time": t, "code": c, "value": v})
            for c, v in (("a21026", 1.0), ("a19001", 6.0))]
    rows.append(json.dumps({"station": "A", "time": t, "code": "a21002", "value": 3,
                            "flag": "M"}))
    ((st, r),) = list(read_jsonl(rows))
    assert st == "31" and r.values == {"a21026": 1.0, "a19001": 6.0, "a21002": 3.0}
    assert r.flags == {"a21002": "M"} and r.period == "hour"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"station": "A", "time": "2020-01-01T00:00:00", "code": "x",
                               "value": 1}) + "\n")
    res = CliRunner().invoke(app, ["analyze", str(bad)])
    assert res.exit_code == 2 and "line 1" in res.output


def dongsi_jsonl(path: Path) -> None:
    codes = {"PM2.5": "a34004", "SO2": "a21026"}
    with DONGSI.open(newline="") as src, path.open("w") as out:
        for row in csv.DictReader(src):
            t = datetime(int(row["year"]), int(row["month"]), int(row["day"]),
                         int(row["hour"]), tzinfo=CST).isoformat()
            for col, code in codes.items():
                if row[col] != "NA":
                    out.write(json.dumps({"station": "dongsi", "st": "22", "time": t,
                                          "code": code, "value": float(row[col])}) + "\n")


def test_dongsi_pm25_days_over_grade_ii_exactly(tmp_path: Path) -> None:
    """Every day over GB 3095 Grade II (>= 20 valid hours) is reported and no other, with the
    standard applied over the whole record; floor-level SO2 raises no flatline clue."""
    hours: dict[date, list[float]] = defaultdict(list)
    with DONGSI.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["PM2.5"] != "NA":
                day = date(int(row["year"]), int(row["month"]), int(row["day"]))
                hours[day].append(float(row["PM2.5"]))
    expected = {d for d, v in hours.items() if len(v) >= 20 and sum(v) / len(v) > 75}
    src, out = tmp_path / "dongsi.jsonl", tmp_path / "clues.jsonl"
    dongsi_jsonl(src)
    res = CliRunner().invoke(app, ["analyze", str(src), "--out", str(out),
                                   "--adopted-from", "2013-01-01"])
    assert res.exit_code == 0, res.output
    clues = [json.loads(x) for x in out.read_text().splitlines()]
    reported: set[date] = set()
    for c in clues:
        if c["kind"] == "exceedance" and c["code"] == "a34004":
            day = datetime.fromisoformat(c["start"]).date()
            end = datetime.fromisoformat(c["end"]).date()
            while day < end:
                assert day not in reported  # episodes do not overlap
                reported.add(day)
                day += timedelta(days=1)
    assert len(expected) > 500
    assert reported == expected  # precision and recall 1.0
    assert not [c for c in clues if c["kind"] == "flatline" and c["code"] == "a21026"]
