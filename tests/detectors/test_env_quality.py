"""Falsified and interrupted data on real Dongsi readings with planted faults."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from contract.records import Reading
from detectors.env import StationMonitor, analyze_series, final_clues
from detectors.env_config import EnvConfig, StationInfo
from detectors.env_io import read_beijing

DONGSI = "samples/sensors/beijing_dongsi_2013-2017.csv"
NO_PNG = EnvConfig(evidence=False)
INFO = StationInfo(id="dongsi")


@pytest.fixture(scope="module")
def summer() -> list[Reading]:
    """Two real summer months, when SO2 sits at its 2-3 µg/m³ floor for days."""
    return [r for r in read_beijing(DONGSI, "dongsi")
            if r.time.year == 2016 and r.time.month in (6, 7)]


def contiguous(readings: list[Reading], n: int) -> list[Reading]:
    """The first stretch of ``n`` readings with no real gap, so planted gaps stand alone."""
    start = 0
    for i in range(1, len(readings)):
        if readings[i].time - readings[i - 1].time > timedelta(hours=2):
            start = i
        elif i - start + 1 == n:
            return readings[start:i + 1]
    raise AssertionError("no contiguous stretch")


def run(readings: list[Reading], config: EnvConfig = NO_PNG) -> list:
    return analyze_series(readings, INFO, config)


def test_so2_floor_is_not_a_flatline(summer: list[Reading]) -> None:
    so2 = [r.values.get("a21026") for r in summer]
    longest, cur = 0, 0
    for a, b in zip(so2, so2[1:], strict=False):
        cur = cur + 1 if a is not None and a == b and a <= 3 else 0
        longest = max(longest, cur)
    assert longest >= 12  # the real data does sit at the floor
    assert not [c for c in run(summer) if c.rule == "flatline/a21026"]


def test_injected_mid_value_run_is_one_flatline_episode(summer: list[Reading]) -> None:
    doctored = [r.model_copy(deep=True) for r in summer]
    for r in doctored[300:318]:
        r.values["a21026"] = 14.0
    events = [c for c in run(doctored) if c.rule == "flatline/a21026"]
    assert events and len({c.clue_id for c in events}) == 1
    assert events[0].state == "open" and events[-1].state == "closed"
    assert events[-1].metrics["run_length"] == 18
    assert events[-1].start == doctored[300].time


def test_offline_gap_and_logger_restart(summer: list[Reading]) -> None:
    clean = contiguous(summer, 400)
    mon = StationMonitor(INFO, NO_PNG)
    events = []
    for r in clean[:200]:
        events += mon.observe(r)
    last = clean[199].time
    gap_end = clean[210]
    mon.note_restart(last - timedelta(minutes=5))
    assert mon.tick(last + timedelta(hours=2)) == []  # within 3x the hourly cadence
    opened = mon.tick(last + timedelta(hours=4))
    assert [c.state for c in opened] == ["open"] and opened[0].kind == "offline"
    closed = [c for c in mon.observe(gap_end) if c.kind == "offline"]
    assert [c.state for c in closed] == ["closed"]
    assert closed[0].clue_id == opened[0].clue_id
    assert closed[0].metrics["interval_s"] == 3600
    assert "logger_restart" in closed[0].metrics
    assert not [c for c in events if c.kind == "offline"]


def test_offline_found_on_arrival_without_tick(summer: list[Reading]) -> None:
    clean = contiguous(summer, 200)
    cut = clean[:100] + clean[112:200]
    off = [c for c in final_clues(run(cut)) if c.kind == "offline"]
    assert len(off) == 1 and off[0].metrics["gap_s"] == 13 * 3600


def test_replayed_block(summer: list[Reading]) -> None:
    doctored = [r.model_copy(deep=True) for r in summer[:400]]
    for i in range(6):  # hours 300-305 resend hours 200-205 with new timestamps
        doctored[300 + i].values = dict(doctored[200 + i].values)
    clues = final_clues(run(doctored))
    replay = [c for c in clues if c.kind == "replay"]
    assert len(replay) == 1 and replay[0].start == doctored[302].time
    assert not [c for c in final_clues(run(summer[:400])) if c.kind == "replay"]


def test_spike_by_robust_z(summer: list[Reading]) -> None:
    doctored = [r.model_copy(deep=True) for r in summer[:300]]
    doctored[250].values["a21004"] = 900.0
    spikes = [c for c in final_clues(run(doctored)) if c.rule == "spike/a21004"]
    assert len(spikes) == 1 and spikes[0].metrics["robust_z"] > 9


def hourly(values: list[dict], flags: list[dict] | None = None, station: str = "s") -> list:
    t0 = datetime(2020, 3, 1, tzinfo=UTC)
    return [Reading(station=station, time=t0 + timedelta(hours=i), period="hour", values=v,
                    flags=(flags[i] if flags else {})) for i, v in enumerate(values)]


def test_impossible_values_and_channel_consistency() -> None:
    info = StationInfo(id="s", st="31")
    vals = [{"a19001": 8.0, "a21002": 60.0, "a21003": 20.0, "a21004": 30.0}] * 3
    vals += [{"a19001": 23.0, "a21002": 120.0, "a21003": 20.0, "a21004": 30.0, "a21026": -4.0}]
    vals += [{"a19001": 20.5, "a21002": 60.0, "a21003": 20.0, "a21004": 30.0,
              "a21026": 30.0, "a21026-ZsRtd": 30.0}]
    vals += [{"a19001": 8.0, "a21002": 60.0, "a21003": 20.0, "a21004": 30.0,
              "a21026": 30.0, "a21026-ZsRtd": 80.0}]
    kinds = {(c.kind, c.rule) for c in analyze_series(hourly(vals), info, NO_PNG)}
    assert ("impossible", "impossible/a19001") in kinds
    assert ("impossible", "impossible/a21026") in kinds
    assert ("inconsistent", "consistency/a21002") in kinds
    assert ("inconsistent", "dilution/a19001") in kinds
    assert ("inconsistent", "consistency/a21026-Zs") in kinds
    ph = analyze_series(hourly([{"w01001": 7.0}, {"w01001": 15.2}], station="w"),
                        StationInfo(id="w", st="32"), NO_PNG)
    assert [c.rule for c in ph] == ["impossible/w01001"]


def test_flag_share_and_flags_masking_an_exceedance() -> None:
    info = StationInfo(id="s", st="31")  # SO2 200 mg/m3 hourly at 6 % O2
    vals = [{"a21026": 120.0, "a19001": 6.0}] * 24 + [{"a21026": 120.0, "a19001": 6.0}] * 24
    flags = [{}] * 24 + [{"a21026": "M"} if 8 <= i < 20 else {} for i in range(24)]
    for i in range(32, 44):
        vals[i] = {"a21026": 300.0, "a19001": 6.0}
    vals.append({"a21026": 120.0, "a19001": 6.0})
    clues = final_clues(analyze_series(hourly(vals, flags + [{}]), info, NO_PNG))
    rules = {c.rule for c in clues}
    assert "flag-share/a21026" in rules
    mask = [c for c in clues if c.rule.startswith("flag-mask/")]
    assert len(mask) == 1 and mask[0].metrics["episode_observations"] == 12
    assert not [c for c in clues if c.kind == "exceedance"]


def test_hugging_just_under_the_limit() -> None:
    info = StationInfo(id="s", st="31")
    vals = [{"a21026": 192.0 + (i % 5), "a19001": 6.0} for i in range(30)]
    hug = [c for c in final_clues(analyze_series(hourly(vals), info, NO_PNG))
           if c.kind == "near_limit"]
    assert len(hug) == 1 and hug[0].metrics["near_limit_windows"] == 24


def test_state_round_trip_gives_the_same_clues(summer: list[Reading]) -> None:
    doctored = [r.model_copy(deep=True) for r in summer[:500]]
    for r in doctored[300:318]:
        r.values["a21026"] = 14.0
    whole = run(doctored)
    mon = StationMonitor(INFO, NO_PNG)
    split = []
    for i, r in enumerate(doctored):
        if i % 97 == 0:
            mon = StationMonitor.from_state(json.loads(json.dumps(mon.to_state())), NO_PNG)
        split += mon.observe(r)
    split += mon.flush()
    assert [c.model_dump() for c in split] == [c.model_dump() for c in whole]
    assert len(json.dumps(mon.to_state())) < 100_000  # bounded rolling state


def test_evidence_png_on_open_and_close(summer: list[Reading]) -> None:
    doctored = [r.model_copy(deep=True) for r in summer[:200]]
    for r in doctored[100:112]:
        r.values["a34004"] = 57.0
    events = [c for c in run(doctored, EnvConfig()) if c.rule == "flatline/a34004"]
    assert [e.state for e in events][0::len(events) - 1] == ["open", "closed"]
    for e in (events[0], events[-1]):
        (ev,) = e.evidence
        assert ev.media_type == "image/png" and ev.content.startswith(b"\x89PNG")
