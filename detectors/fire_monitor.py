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

Why events close: a fire that has burnt out is no longer an alert on the monitoring
center's map, and an open clue keeps adding to its entity's risk. By the grouping rule a
detection more than ``group_hours`` after an event's last one starts a new event, so once
the data have moved that far past it the event cannot grow any more: its clue is sent
again as ``closed`` (``end`` its last detection). The data's clock is the batch's
``observed_until``, the newest acquisition time of the whole file or poll answer (detections
elsewhere in the area show that the satellites' data got that far), or its own newest
detection; never the wall clock, so an archive replayed years later closes its events as
the data move on, and a feed that stops closes nothing. The emitted events' clues (without
their evidence) are kept in the cell's state until they close.
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
        #: emitted events not closed yet: clue id -> [last detection (epoch s), its clue]
        self.open: dict[str, list[Any]] = dict((state or {}).get("open", {}))
        self.masked: list[str] = []  # reasons of the masked events of the last batch

    def observe(self, batch: FireBatch) -> list[Clue]:
        clues = self._events(batch)
        times = [d.time for d in batch.detections]
        if batch.observed_until is not None:
            times.append(batch.observed_until)
        return clues + self._close(max(times).timestamp())

    def _close(self, now: float) -> list[Clue]:
        """The clues of the open events that ended more than ``group_hours`` before
        ``now`` (the data's clock), as ``closed``."""
        ended = [cid for cid, (last, _) in self.open.items()
                 if now - last > self.params.group_hours * 3600]
        out = []
        for cid in sorted(ended):
            last, clue = self.open.pop(cid)
            end = datetime.fromtimestamp(last, UTC)
            out.append(Clue.model_validate({**clue, "state": "closed", "end": end}))
        return out

    def _events(self, batch: FireBatch) -> list[Clue]:
        self.masked = []
        if not batch.detections:  # the data's time only
            return []
        known = {_key(d) for d in self.history}
        kept, _ = dedupe([*self.history, *batch.detections], self.params)
        new = [d for d in kept if _key(d) not in known]
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
            # by clue id: a later fire at the same place has the same event id, not start
            self.open[clue.clue_id] = [event.end.timestamp(), clue.model_dump(
                mode="json", exclude={"evidence", "state"})]
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
        return {"history": [_pack(d) for d in self.history],
                "open": {cid: [last, clue] for cid, (last, clue) in self.open.items()}}


def _factory(config: FireConfig, subject: str, state: dict[str, Any] | None) -> FireMonitor:
    return FireMonitor(config, subject, state)


register(FireConfig, _factory)
