"""The unregistered-source rule: one clue per unknown station, closed once registered."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from detectors.env_registry import KIND, observe

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 3, 1, 8, tzinfo=CST)


def test_one_clue_per_unknown_station_closed_when_registered() -> None:
    states: dict[str, dict] = {"X1": {}, "X2": {}}
    events = []
    for hour in range(48):  # two unknown stations report hourly for two days
        for station in ("X1", "X2"):
            clue = observe(states[station], station, T0 + timedelta(hours=hour), known=False,
                           source="mqtt")
            if clue is not None:
                events.append(clue)
    assert [(c.subject, c.state, c.kind) for c in events] == [("X1", "open", KIND),
                                                             ("X2", "open", KIND)]
    assert events[0].start == T0 and events[0].metrics["source"] == "mqtt"
    assert events[0].location is None  # nobody knows where it is
    # the state is plain JSON: a worker restart (state from its table) opens no second clue
    import json
    resumed = json.loads(json.dumps(states["X1"]))
    assert observe(resumed, "X1", T0 + timedelta(days=3), known=False) is None
    # X1 is registered: its clue closes, same episode (same clue id), then nothing more
    closed = observe(resumed, "X1", T0 + timedelta(days=3, hours=1), known=True)
    assert closed is not None and closed.state == "closed"
    assert closed.clue_id == events[0].clue_id and closed.end == T0 + timedelta(days=3, hours=1)
    assert observe(resumed, "X1", T0 + timedelta(days=3, hours=2), known=True) is None
    assert resumed == {}


def test_known_stations_never_raise_and_a_later_retirement_is_a_new_episode() -> None:
    state: dict = {}
    assert all(observe(state, "S1", T0 + timedelta(hours=h), known=True) is None
               for h in range(10))
    again = observe(state, "S1", T0 + timedelta(days=1), known=False, source="hj212-tcp")
    assert again is not None and again.state == "open" and again.start == T0 + timedelta(days=1)
    # a late reading older than the episode start still closes it at a sane time
    late = observe(state, "S1", T0, known=True)
    assert late is not None and late.end is not None and late.end >= late.start
