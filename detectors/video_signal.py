"""Signal loss of a camera, from the health records its RTSP ingester sends.

A pure detector: ``observe(state, record, config)`` returns the clues and the camera's new
state. The state is a plain JSON dict (ISO times), so a Faust table keyed by camera holds
it and a worker that takes the camera over after a rebalance or a restart goes on with the
same episode. No clock is read: time comes with the records, and the ingester's heartbeats
carry it forward while the camera sends nothing (``ingest.rtsp_health``).

One episode per outage: a ``signal_loss`` clue opens when a record's time is at least
``signal_loss_s`` after the last frame (after the first offline record when the camera
never sent one), is re-sent as an ``update`` at most every ``update_every_s`` while it
lasts and closes with the first online record. Its start is the time of the last frame (or
that first offline record), which comes from the records, so the clue id is the same
whenever the same records are judged again (a redelivery after a crash) and across an
ingester restart in the middle of an outage.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contract.clue import Clue
from contract.records import CameraHealth

DETECTOR = "offsite.video_signal"
VERSION = "0.2.0"
RULE = "camera/signal_loss"
KIND = "signal_loss"

State = dict[str, Any]


class SignalLossConfig(BaseModel):
    """Thresholds; a health record's own ``signal_loss_s`` (set by its ingester) wins."""

    model_config = ConfigDict(extra="forbid")

    signal_loss_s: float = Field(default=30.0, gt=0, description="no frame this long: a clue")
    update_every_s: float = Field(default=30.0, gt=0, description="re-send an open clue")


def new_state() -> State:
    return {"time": None, "online": None, "last_frame": None, "offline_since": None,
            "loss_start": None, "loss_sent": None, "reconnects": 0, "detail": ""}


def observe(state: State | None, record: CameraHealth, config: SignalLossConfig,
            location: dict[str, Any] | None = None) -> tuple[list[Clue], State]:
    """Judge one health record of a camera; returns (clues, new state).

    Records not newer than the newest one judged are ignored (a redelivery of what the state
    has seen already). ``location`` (a GeoJSON point of the camera) goes into the clues so
    that they are routed to the zone the camera watches. ``state`` is not modified.
    """
    old = state or new_state()
    seen = _time(old["time"])
    if seen is not None and record.time <= seen:
        return [], old
    new = dict(old, time=_iso(record.time))
    frame = _latest(_time(old["last_frame"]), record.last_frame)
    new["last_frame"] = _iso(frame)
    threshold = record.signal_loss_s or config.signal_loss_s
    clues: list[Clue] = []
    if record.online:
        if old["online"] is not True:
            new["reconnects"] = int(old["reconnects"]) + 1
        new.update(online=True, offline_since=None, detail="")
        if old["loss_start"] is not None:
            clues.append(_clue(new, record, "closed", _time(old["loss_start"]), threshold,
                               config, location))
            new.update(loss_start=None, loss_sent=None)
        return clues, new
    new.update(online=False, detail=record.detail)
    if old["online"] is not False or old["offline_since"] is None:
        new["offline_since"] = _iso(record.time)
    since = frame or _time(new["offline_since"])
    assert since is not None
    loss_start = _time(old["loss_start"])
    if loss_start is None:
        if (record.time - since).total_seconds() >= threshold:
            new.update(loss_start=_iso(since), loss_sent=_iso(record.time))
            clues.append(_clue(new, record, "open", since, threshold, config, location))
    elif (record.time - _time(old["loss_sent"])).total_seconds() >= config.update_every_s:
        new["loss_sent"] = _iso(record.time)
        clues.append(_clue(new, record, "update", loss_start, threshold, config, location))
    return clues, new


def _clue(state: State, record: CameraHealth, clue_state: str, start: datetime | None,
          threshold: float, config: SignalLossConfig,
          location: dict[str, Any] | None) -> Clue:
    assert start is not None
    offline_s = (record.time - start).total_seconds()
    detail = state["detail"] if clue_state != "closed" else ""
    return Clue(
        modality="video", kind=KIND, rule=RULE, subject=record.camera, state=clue_state,
        start=start, time=record.time, end=record.time if clue_state == "closed" else None,
        confidence=1.0, location=location,
        metrics={"offline_s": round(offline_s, 1), "reconnects": state["reconnects"]},
        summary=(f"camera {record.camera}: no video for {offline_s:.0f}s"
                 + (" (restored)" if clue_state == "closed" else "")
                 + (f"; {detail}" if detail else "")),
        detector=DETECTOR, detector_version=VERSION,
        params={"signal_loss_s": threshold, "update_every_s": config.update_every_s})


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
