"""The power rules on series shaped like a real plant's: a production line that starts and
stops, fans that follow it, and the faults an inspector looks for (treatment switched off,
treatment idling, production in a declared shutdown, a meter gone silent)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from detectors.plugin import create
from detectors.power import Channel, EntityMonitor, PowerConfig, Sample, Shutdown

T0 = datetime(2026, 5, 20, 6, 0, tzinfo=UTC)
CHANNELS = [Channel(entity="E", meter="M1", channel="mill", role="production", rated_kw=60,
                    idle_kw=5),
            Channel(entity="E", meter="M2", channel="fan", role="treatment", rated_kw=5,
                    idle_kw=0.5)]


def plant(minutes: int, *, prod: float = 45.0, fan: float = 4.0, step_s: int = 60,
          start: datetime = T0, fan_at: dict[int, float] | None = None) -> list[Sample]:
    """Two meters, each reporting every ``step_s`` (the fan meter 20 s after the mill's)."""
    out = []
    for i in range(minutes * 60 // step_s):
        t = start + timedelta(seconds=i * step_s)
        out.append(Sample("M1", t, {"mill": prod}))
        minute = i * step_s // 60
        out.append(Sample("M2", t + timedelta(seconds=20),
                          {"fan": (fan_at or {}).get(minute, fan)}))
    return out


def run(samples: list[Sample], config: PowerConfig | None = None,
        shutdowns: list[Shutdown] | None = None) -> list:
    monitor = EntityMonitor("E", CHANNELS, config)
    monitor.shutdowns = shutdowns or []
    out = []
    for s in samples:
        out += monitor.observe(s)
    return out


def test_a_plant_that_runs_its_fan_raises_nothing() -> None:
    assert run(plant(240)) == []


def test_fan_off_for_half_an_hour_is_one_episode_with_its_times() -> None:
    off = {m: 0.05 for m in range(60, 90)}
    clues = run(plant(180, fan_at=off))
    assert [(c.kind, c.state) for c in clues] == [("treatment_off", "open"),
                                                  ("treatment_off", "closed")]
    opened, closed = clues
    assert opened.clue_id == closed.clue_id
    assert closed.start == T0 + timedelta(minutes=60, seconds=20)  # the first fan sample off
    assert closed.end == T0 + timedelta(minutes=90)  # the last mill sample with the fan off
    assert closed.metrics["value"] == pytest.approx(0.05)
    assert closed.metrics["limit"] == 0.5 and closed.metrics["channel"] == "fan"
    assert closed.metrics["production_kw_mean"] == pytest.approx(45.0)


def test_short_dips_and_the_start_up_grace_raise_nothing() -> None:
    dip = {m: 0.0 for m in range(30, 36)}  # six minutes: below min_episode_s
    assert run(plant(120, fan_at=dip)) == []
    # production starts while the fan still starts up: within the grace it is no clue
    late_fan = {m: 0.0 for m in range(0, 4)}
    assert run(plant(60, fan_at=late_fan)) == []


def test_fan_never_started_is_found_after_grace_and_minimum_duration() -> None:
    config = PowerConfig(grace_s=300, min_episode_s=600)
    clues = run(plant(60, fan=0.0), config)
    assert [(c.kind, c.state) for c in clues] == [("treatment_off", "open")]
    # judged only once production ran for the grace, and opened after the minimum duration
    assert clues[0].start >= T0 + timedelta(seconds=300)
    assert clues[0].time - clues[0].start >= timedelta(seconds=600)


def test_production_stopping_closes_the_episode_and_idle_production_is_no_clue() -> None:
    stopped = plant(60, prod=2.0, fan=0.0)  # line on standby, fan off: allowed
    assert run(stopped) == []
    clues = run(plant(40, fan=0.0) + plant(30, prod=2.0, fan=0.0,
                                           start=T0 + timedelta(minutes=40)))
    assert [c.state for c in clues] == ["open", "closed"]


def test_treatment_idling_is_judged_against_its_learnt_load() -> None:
    low = {m: 1.2 for m in range(90, 120)}  # running (above idle) but at 30 % of usual 4 kW
    clues = run(plant(150, fan_at=low))
    assert [(c.kind, c.state) for c in clues] == [("treatment_idle", "open"),
                                                  ("treatment_idle", "closed")]
    assert clues[0].metrics["limit"] == pytest.approx(0.5 * 4.0)
    # nothing is judged before the usual load is learnt: idling from the start is unknown
    assert run(plant(60, fan=1.2)) == []


def test_production_in_a_declared_shutdown() -> None:
    stop = Shutdown("E", "orange", T0 + timedelta(minutes=30), T0 + timedelta(minutes=90))
    clues = run(plant(120), shutdowns=[stop])
    assert [(c.kind, c.state) for c in clues] == [("production_in_shutdown", "open"),
                                                  ("production_in_shutdown", "closed")]
    assert clues[1].metrics["level"] == "orange"
    assert clues[1].metrics["value"] == pytest.approx(45.0)


def test_a_silent_meter_is_offline_from_the_gap_and_from_the_clock() -> None:
    before = plant(30)
    after = plant(30, start=T0 + timedelta(hours=3))
    clues = [c for c in run(before + after) if c.kind == "meter_offline"]
    assert sorted(c.metrics["meter"] for c in clues) == ["M1", "M2"]
    assert all(c.state == "closed" and c.metrics["gap_s"] > 3600 for c in clues)
    monitor = EntityMonitor("E", CHANNELS)
    for s in before:
        monitor.observe(s)
    ticked = monitor.tick(T0 + timedelta(hours=2))
    assert [(c.kind, c.state) for c in ticked] == [("meter_offline", "open")] * 2
    assert monitor.tick(T0 + timedelta(hours=2, minutes=5)) == []  # opened once
    resumed = [c for s in after for c in monitor.observe(s) if c.kind == "meter_offline"]
    assert {c.clue_id for c in resumed} == {c.clue_id for c in ticked}  # the same episodes
    assert {c.state for c in resumed} == {"closed"}


def test_state_survives_json_and_a_restart_mid_episode() -> None:
    off = {m: 0.0 for m in range(60, 100)}
    samples = plant(150, fan_at=off)
    whole = run(samples)
    monitor = EntityMonitor("E", CHANNELS)
    first = [c for s in samples[:150] for c in monitor.observe(s)]
    restored = create(PowerConfig(channels=CHANNELS), "E",
                      json.loads(json.dumps(monitor.to_state())))
    second = [c for s in samples[150:] for c in restored.observe(s)]
    assert [(c.clue_id, c.state) for c in first + second] == [
        (c.clue_id, c.state) for c in whole]


def test_an_evidence_plot_of_both_sides_comes_with_open_and_closed() -> None:
    plots = []
    monitor = EntityMonitor("E", CHANNELS, on_plot=lambda ref, plot: plots.append(plot))
    off = {m: 0.0 for m in range(60, 90)}
    clues = [c for s in plant(120, fan_at=off) for c in monitor.observe(s)]
    assert len(plots) == 2 and all(len(c.evidence) == 1 for c in clues)
    png = plots[-1].render()
    assert png.startswith(b"\x89PNG") and plots[-1].production and "M2/fan" in plots[-1].treatment
