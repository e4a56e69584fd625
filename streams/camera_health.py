"""Camera health agent: ``camera.health`` records to ``camera_health`` rows and clues.

The RTSP ingester only reports what it sees of each camera (``ingest.rtsp_health``): a
record at every online/offline transition and heartbeats. This agent

* writes ``camera_health`` rows (``storage.sinks.CameraHealthSink``, idempotent): every
  transition, and a heartbeat when the camera's previous row is at least ``row_every_s``
  old, so an online camera gets its periodic row (the ingester's heartbeat comes every
  60 s) and an offline one, whose heartbeats come every few seconds to carry time
  forward, about one a minute -- the rows of the old ingester;
* runs the pure signal-loss detector (``detectors.video_signal``) per camera, its state in
  the Faust table ``camera-signal`` keyed by camera (plain JSON; the changelog is what a
  restarted or rebalanced worker recovers from), and sends its clues through the one clue
  exit. The camera's registry position, if any, goes into the clues (a GeoJSON point) so
  they are routed to the zone the camera watches; it is read only for cameras that may
  raise a clue (offline, or with an episode open), so healthy cameras cost no query.

Order per batch, as in every stateful agent: clues first (``clue_exit.publish`` returns
once the broker has them), then the rows, then the state. A crash in between re-delivers
the batch, which the old state judges again: the same clue ids, the same rows (both
idempotent downstream). Records that do not validate become dead letters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from contract.clue import Clue
from contract.records import CameraHealth, Rejected
from contract.topics import CAMERA_HEALTH
from detectors.video_signal import SignalLossConfig, observe
from storage.cameras import HealthRow, load_camera_config
from storage.sinks import CameraHealthSink, RejectedSink
from streams.sinks import flush_until_durable
from streams.table_state import put_state

if TYPE_CHECKING:
    from streams.app import Streams

log = logging.getLogger(__name__)
ROW_EVERY_S = 50.0     # a heartbeat makes a row when the camera's last row is this old
LOCATION_TTL_S = 300.0  # a camera's registry position is re-read after this
MISSING_TTL_S = 30.0    # an unregistered camera (or a failed read) is asked again after this


class CameraLocations:
    """The cameras' registry positions (GeoJSON points), cached for a while."""

    def __init__(self, streams: Streams) -> None:
        self.streams = streams
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

    def forget(self) -> None:
        """Read every camera's position again on next need (the registry changed)."""
        self._cache.clear()

    async def lookup(self, cameras: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        now = time.monotonic()
        out: dict[str, dict[str, Any] | None] = {}
        for camera in cameras:
            hit = self._cache.get(camera)
            if hit is None or hit[0] <= now:
                hit = await self._read(camera, now, hit[1] if hit else None)
                self._cache[camera] = hit
            out[camera] = hit[1]
        return out

    async def _read(self, camera: str, now: float, old: dict[str, Any] | None
                    ) -> tuple[float, dict[str, Any] | None]:
        try:
            config = await load_camera_config(await self.streams.db_pool(), camera)
        except Exception as exc:  # database away: the clue goes without (or the old) place
            log.warning("camera %s: cannot read its position (%s)", camera, exc)
            return now + MISSING_TTL_S, old
        location = (config or {}).get("location")
        return now + (LOCATION_TTL_S if location else MISSING_TTL_S), location


class CameraHealthAgent:
    """The agent, its table and the batch logic (``handle``, callable without Kafka)."""

    def __init__(self, streams: Streams, config: SignalLossConfig | None = None,
                 row_every_s: float = ROW_EVERY_S) -> None:
        self.streams = streams
        self.settings = streams.settings
        self.config = config or SignalLossConfig()
        self.row_every_s = row_every_s
        self.locations = CameraLocations(streams)
        self.table = streams.app.Table(
            "camera-signal", default=None, partitions=self.settings.partitions,
            key_type=str, help="signal-loss detector state and last health row per camera")

        async def camera_health(stream: Any) -> None:
            async for events in stream.take_events(self.settings.sink_batch_size,
                                                   within=self.settings.sink_batch_seconds):
                try:
                    await self.handle(events)
                except Exception:  # never let the body raise: Faust would ack the batch
                    log.exception("camera health batch of %d records failed", len(events))

        self.agent = streams.app.agent(streams.topic(CAMERA_HEALTH),
                                       name="streams.camera_health.camera_health")(camera_health)
        streams.on_registry_change.append(self.registry_changed)

    def registry_changed(self, kind: str) -> None:
        if kind in ("camera", "*"):
            self.locations.forget()

    async def handle(self, events: Sequence[Any]) -> int:
        """Judge one batch of ``camera.health`` events; returns the number of clues sent."""
        dead = RejectedSink()
        groups: dict[str, tuple[int, list[CameraHealth]]] = {}
        for event in events:
            record = decode(event.value, dead)
            if record is not None:
                groups.setdefault(record.camera, (event.message.partition, []))[1].append(record)
        maybe = [camera for camera, (_, records) in groups.items()
                 if any(not r.online for r in records) or self._episode_open(camera)]
        locations = await self.locations.lookup(maybe) if maybe else {}
        clues: list[Clue] = []
        rows: list[HealthRow] = []
        values: list[tuple[int, str, dict[str, Any]]] = []
        for camera, (partition, records) in groups.items():
            value = self._judge(camera, records, locations.get(camera), clues, rows)
            values.append((partition, camera, value))
        if clues:
            await self.streams.clue_exit.publish(clues)
        await self._write(rows, dead)
        for partition, camera, value in values:
            put_state(self.table, partition, camera, value)
        return len(clues)

    def _episode_open(self, camera: str) -> bool:
        value = self.table.data.get(camera)
        return bool(value and value["signal"].get("loss_start"))

    def _judge(self, camera: str, records: list[CameraHealth],
               location: dict[str, Any] | None, clues: list[Clue],
               rows: list[HealthRow]) -> dict[str, Any]:
        """Run one camera's records of a batch; adds its clues and rows, returns its value."""
        value = self.table.data.get(camera)
        signal = value["signal"] if value else None
        row_at = _time(value["row_at"]) if value else None
        for record in records:
            found, signal = observe(signal, record, self.config, location)
            clues.extend(found)
            due = row_at is None or (record.time - row_at).total_seconds() >= self.row_every_s
            if record.transition or due:
                rows.append(HealthRow(record.time, record.camera, record.online, record.fps,
                                      record.detail))
                if row_at is None or record.time > row_at:
                    row_at = record.time
        return {"signal": signal, "row_at": row_at.isoformat() if row_at else None}

    async def _write(self, rows: list[HealthRow], dead: RejectedSink) -> None:
        """Rows and dead letters, durable before the batch's offsets are committed."""
        if not rows and not len(dead):
            return
        sink = CameraHealthSink()
        for row in rows:
            sink.add(row)
        await flush_until_durable(self.streams.db_pool, sink, dead,
                                  max_attempts=self.settings.retry_max_attempts)


def decode(raw: Any, dead: RejectedSink) -> CameraHealth | None:
    """The record, or None with a dead letter kept of its bytes."""
    data = raw if isinstance(raw, bytes) else str(raw or "").encode()
    try:
        return CameraHealth.loads(data)
    except (ValidationError, ValueError) as exc:
        reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        dead.add(Rejected(time=datetime.now(UTC), source=f"stream:{CAMERA_HEALTH.name}",
                          reason=f"invalid CameraHealth: {reason}", raw=data))
        return None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def register(streams: Streams) -> CameraHealthAgent:
    """Register the agent and its table on ``streams.app``; returns it (tests drive it)."""
    return CameraHealthAgent(streams)
