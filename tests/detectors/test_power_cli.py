"""``offsite power analyze``: the offline contract on a plant's readings in env JSON lines,
with the channel and shutdown files read (and checked) as a registry import reads them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from detectors.power_contract import CONTRACT_KEYS
from offsite.cmd_power import app

T0 = datetime(2026, 5, 20, 6, 0, tzinfo=UTC)


def readings(path: Path, minutes: int, fan_off: range) -> Path:
    """The mill's meter and the fan's meter, interleaved as they arrive (any order across
    meters, each meter in time order)."""
    lines = []
    for m in range(minutes):
        t = T0 + timedelta(minutes=m)
        lines.append({"station": "MTR-A", "time": t.isoformat(), "code": "p1", "value": 42.0})
        lines.append({"station": "MTR-B", "time": (t + timedelta(seconds=30)).isoformat(),
                      "code": "t1", "value": 0.0 if m in fan_off else 3.5})
    lines.append({"station": "OTHER", "time": T0.isoformat(), "code": "x", "value": 1})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def test_episodes_come_out_in_the_contract(tmp_path: Path) -> None:
    channels = tmp_path / "power_channels.csv"
    channels.write_bytes("entity,meter,channel,role,rated_kw,idle_kw\n"
                         "ENT-1,MTR-A,p1,生产,60,5\n"       # Chinese role names as typed
                         "ENT-1,MTR-B,t1,治污,5,0.5\n".encode("gb18030"))
    shutdowns = tmp_path / "shutdowns.csv"
    shutdowns.write_text("scope,level,start,end\nENT-1,红色,2026-05-20 16:00,2026-05-20 17:00\n",
                         encoding="utf-8-sig")  # China Standard Time: 08:00-09:00 UTC
    out = tmp_path / "clues.jsonl"
    res = CliRunner().invoke(app, [
        "analyze", str(readings(tmp_path / "r.jsonl", 240, range(30, 70))),
        "--channels", str(channels), "--shutdowns", str(shutdowns), "--out", str(out),
        "--evidence-dir", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(tuple(r) == CONTRACT_KEYS for r in rows)
    kinds = sorted((r["kind"], r["channel"]) for r in rows)
    assert kinds == [("production_in_shutdown", None), ("treatment_off", "t1")]
    off = next(r for r in rows if r["kind"] == "treatment_off")
    assert (off["entity"], off["station"], off["code"]) == ("ENT-1", "MTR-B", "t1")
    assert off["start"] == (T0 + timedelta(minutes=30, seconds=30)).isoformat()
    assert off["detail"]["state"] == "closed" and off["limit"] == 0.5 and off["value"] == 0.0
    assert off["standard"] is None
    stop = next(r for r in rows if r["kind"] == "production_in_shutdown")
    assert stop["start"] == "2026-05-20T08:00:00+00:00" and stop["value"] == 42.0
    assert len(list((tmp_path / "ev").glob("*.png"))) == 2  # each episode's plot, closed


def test_a_broken_channels_file_names_its_faults(tmp_path: Path) -> None:
    channels = tmp_path / "power_channels.csv"
    channels.write_text("entity,meter,channel,role,rated_kw,idle_kw\n"
                        "ENT-1,MTR-A,p1,boiler,60,5\n"
                        "ENT-1,MTR-B,t1,treatment,5,lots\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["analyze", str(readings(tmp_path / "r.jsonl", 10, range(0))),
                                   "--channels", str(channels)])
    assert res.exit_code == 2
    assert "power_channels.csv:2: role: role 'boiler' is not production or treatment" \
        in res.output
    assert "power_channels.csv:3: idle_kw: not a number: 'lots'" in res.output
