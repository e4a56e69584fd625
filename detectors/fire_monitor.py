"""The fire plug-in: one region cell's FIRMS batches to fire-event clues, with its history.

Why a history: the persistent-heat mask needs to know which places burnt on earlier days,
and an event that keeps burning across two deliveries (a poll at 06:00 and one at 09:00)
should stay one event. The monitor keeps the cell's deduplicated detections of the last
``persistent_window_days`` (compact lists, at most ``MAX_HISTORY``, oldest dropped first, so
the state stays far below a Kafka record's size), regroups the recent ones with each new
batch and returns a clue for every unmasked event that got a new detection. The event id
is its earliest detection's place, so a grown event updates the clue it already had
(state ``update``) instead of opening another. A batch delivered twice adds nothing the
second time: its rows are exact duplicates of the history.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from contract.clue import Clue
from contract.records import FireBatch, FireDetection
from detectors.fire import (
    FireEvent,
    FireParams,
    FireZones,
    History,
    classify,
    dedupe,
    group,
)
from detectors.fire_evidence import event_clue, event_evidence
from detectors.plugin import DetectorConfig, register

MAX_HISTORY = 3000  # detections per cell: about 240 kB of state
REGROUP_HOURS = 48.0  # history before a batch's first detection that may join its events


class FireConfig(DetectorConfig):
    """``FireParams`` as a plug-in config (its defaults are the dataclass's)."""

    type: Literal["fire"] = "fire"
    dedupe_minutes: float = FireParams.dedupe_minutes
    group_km: float = FireParams.group_km
    group_hours: float = FireParams.group_hours
    persistent_km: float = FireParams.persistent_km
    persistent_days: int = FireParams.persistent_days
    persistent_window_days: float = FireParams.persistent_window_days
    harvest_months: tuple[int, ...] = FireParams.harvest_months

    def params(self) -> FireParams:
        return FireParams(**self.model_dump(exclude={"type"}))


def _pack(d: FireDetection) -> list[Any]:
    return [round(d.lon, 5), round(d.lat, 5), int(d.time.timestamp()), d.satellite,
            d.instrument, round(d.confidence, 3), d.confidence_raw, round(d.frp, 2),
            round(d.scan, 2), round(d.track, 2), d.brightness, d.daynight]


def _unpack(row: list[Any]) -> FireDetection:
    lon, lat, t, sat, inst, conf, raw, frp, scan, track, bright, dn = row
    return FireDetection(lon=lon, lat=lat, time=datetime.fromtimestamp(t, UTC), satellite=sat,
                         instrument=inst, confidence=conf, confidence_raw=raw, frp=frp,
                         scan=scan, track=track, brightness=bright, daynight=dn)


def _key(d: FireDetection) -> tuple[Any, ...]:
    return tuple(_pack(d)[:5])


class FireMonitor:
    """Fire events of one region cell (the ``sat.fires`` key)."""

    def __init__(self, config: FireConfig, cell: str, state: dict[str, Any] | None = None,
                 zones: FireZones | None = None) -> None:
        self.config = config
        self.params = config.params()
        self.cell = cell
        self.zones = zones
        self.history = [_unpack(r) for r in (state or {}).get("history", [])]
        self.masked: list[str] = []  # reasons of the masked events of the last batch

    def observe(self, batch: FireBatch) -> list[Clue]:
        known = {_key(d) for d in self.history}
        kept, _ = dedupe([*self.history, *batch.detections], self.params)
        new = [d for d in kept if _key(d) not in known]
        self.masked = []
        if not new:
            return []
        since = min(d.time for d in new) - timedelta(hours=REGROUP_HOURS)
        recent = [d for d in kept if d.time >= since]
        new_keys = {_key(d) for d in new}
        clues = []
        history = History(kept)
        for dets in group(recent, self.params):
            if not any(_key(d) in new_keys for d in dets):
                continue
            event = classify(FireEvent(dets), self.zones, history, self.params)
            if event.masked is not None:
                self.masked.append(event.masked)
                continue
            clue = event_clue(event, source=batch.source, sha256=batch.sha256,
                              evidence=event_evidence(event, self.zones, batch.source,
                                                      batch.sha256),
                              params=self.config.model_dump())
            if any(_key(d) in known for d in dets):
                clue = clue.model_copy(update={"state": "update"})
            clues.append(clue)
        self._remember(kept)
        return clues

    def _remember(self, kept: list[FireDetection]) -> None:
        newest = max(d.time for d in kept)
        since = newest - timedelta(days=self.params.persistent_window_days)
        self.history = sorted((d for d in kept if d.time >= since),
                              key=lambda d: (d.time, d.lat, d.lon))[-MAX_HISTORY:]

    def flush(self) -> list[Clue]:
        return []

    def to_state(self) -> dict[str, Any]:
        return {"history": [_pack(d) for d in self.history]}


def _factory(config: FireConfig, subject: str, state: dict[str, Any] | None) -> FireMonitor:
    return FireMonitor(config, subject, state)


register(FireConfig, _factory)
