"""The signal-loss detector on sequences of camera health records (pure, no services)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from contract.clue import Clue
from contract.records import CameraHealth
from detectors.video_signal import SignalLossConfig, State, observe

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CONFIG = SignalLossConfig(signal_loss_s=30, update_every_s=30)
POINT = {"type": "Point", "coordinates": [121.4, 28.6]}


def health(t: float, online: bool, last_frame: float | None, *, transition: bool = False,
           detail: str = "", signal_loss_s: float | None = None) -> CameraHealth:
    frame = None if last_frame is None else T0 + timedelta(seconds=last_frame)
    return CameraHealth(camera="CAM-1", time=T0 + timedelta(seconds=t), online=online,
                        fps=10.0 if online else 0.0, last_frame=frame,
                        transition=transition, detail=detail, signal_loss_s=signal_loss_s)


def run(records: list[CameraHealth], state: State | None = None,
        config: SignalLossConfig = CONFIG) -> tuple[list[Clue], State | None]:
    clues: list[Clue] = []
    for record in records:
        out, state = observe(state, record, config, POINT)
        json.dumps(state)  # a Faust table holds it: plain JSON
        clues += out
    return clues, state


def outage() -> list[CameraHealth]:
    """Online until 100 s, last frame at 99.5 s, offline records every 5 s, back at 200 s."""
    records = [health(0, True, None, transition=True), health(60, True, 59.9)]
    records += [health(104.5, False, 99.5, transition=True, detail="stream ended")]
    records += [health(t, False, 99.5, detail="cannot open stream") for t in range(105, 200, 5)]
    records += [health(200, True, 199.8, transition=True, detail="online")]
    return records


def test_opens_after_the_threshold_updates_throttled_and_closes_when_online() -> None:
    clues, state = run(outage())
    assert [c.state for c in clues] == ["open", "update", "update", "closed"]
    opened, *_, closed = clues
    assert opened.time == T0 + timedelta(seconds=130)  # first record >= 30 s after the frame
    assert opened.start == T0 + timedelta(seconds=99.5)  # the last frame
    assert (opened.modality, opened.kind, opened.rule, opened.subject) == \
        ("video", "signal_loss", "camera/signal_loss", "CAM-1")
    assert opened.location == POINT and opened.end is None
    assert opened.metrics == {"offline_s": 30.5, "reconnects": 1}
    assert opened.summary == "camera CAM-1: no video for 30s; cannot open stream"
    assert [c.time for c in clues[1:3]] == [T0 + timedelta(seconds=160),
                                            T0 + timedelta(seconds=190)]
    assert len({c.clue_id for c in clues}) == 1  # one episode
    assert closed.end == closed.time == T0 + timedelta(seconds=200)
    assert closed.metrics == {"offline_s": 100.5, "reconnects": 2}
    assert closed.summary.endswith("(restored)")
    assert state is not None and state["loss_start"] is None and state["online"] is True


def test_a_short_stall_raises_no_clue() -> None:
    records = [health(0, True, None, transition=True),
               health(10, False, 5, transition=True), health(15, False, 5),
               health(20, False, 5), health(30, True, 29.5, transition=True)]
    clues, _ = run(records)
    assert clues == []


def test_no_frame_ever_counts_from_the_first_offline_record() -> None:
    records = [health(t, False, None, detail="cannot open stream") for t in range(15, 60, 5)]
    clues, _ = run(records)
    assert [c.state for c in clues] == ["open"]
    assert clues[0].start == T0 + timedelta(seconds=15)
    assert clues[0].time == T0 + timedelta(seconds=45)


def test_the_ingesters_threshold_wins_over_the_default() -> None:
    records = [health(0, True, None, transition=True),
               health(2.1, False, 0.0, transition=True, signal_loss_s=3),
               health(3.0, False, 0.0, signal_loss_s=3)]
    clues, _ = run(records)
    assert [c.state for c in clues] == ["open"]
    assert clues[0].params["signal_loss_s"] == 3


def test_redelivery_gives_the_same_clue_id_and_nothing_twice() -> None:
    records = outage()
    first, _ = run(records)
    # a worker died after sending the clues of records[:10] but before writing its state:
    # the records come again and are judged from the old state
    _, before = run(records[:5])
    again, _ = run(records[5:10], before)
    assert [c.clue_id for c in again] == [c.clue_id for c in first[:1]]
    assert again[0] == first[0]
    # records the state has seen already are ignored
    _, seen = run(records[:10])
    repeat, same = run(records[:10], seen)
    assert repeat == [] and same == seen


def test_an_ingester_restart_during_an_outage_continues_the_episode() -> None:
    records = outage()[:12]  # open at 130, an update at 160 is the 13th
    clues, state = run(records)
    assert [c.state for c in clues] == ["open"]
    # a new ingester never saw a frame: its records carry no last_frame
    restarted = [health(t, False, None, transition=t == 170, detail="cannot open stream")
                 for t in range(170, 200, 5)] + [health(200, True, 199.9, transition=True)]
    more, _ = run(restarted, state)
    assert [c.state for c in more] == ["update", "closed"]
    assert {c.clue_id for c in clues + more} == {clues[0].clue_id}
