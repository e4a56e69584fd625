"""RTSP ingester: IP cameras to ``video.frames`` and ``camera.health``; it only ingests.

Capture (threads, reconnect backoff, sampling, JPEG encoding) is ``ingest.rtsp_capture``;
this module runs the cameras of the registry (and ``--camera`` ones) and publishes what
they yield. Sampled frames wait in a small per-camera queue whose *oldest* frame is
dropped when full: under back-pressure (a slow or absent broker) the newest picture
matters and memory stays bounded. They are published as :class:`contract.records.Frame`
to ``video.frames`` keyed by camera.

Every 0.25 s the loop asks each camera's ``ingest.rtsp_health.HealthWatch`` whether a
:class:`contract.records.CameraHealth` record is due (a transition or a heartbeat) and
publishes it to ``camera.health`` keyed by camera. Health records are few and are what the
worker turns into ``camera_health`` rows and ``signal_loss`` clues
(``streams.camera_health`` with ``detectors.video_signal``), so unlike frames they are
retried in order until the broker has them (the newest 1000 are kept meanwhile).

Frame and health times are the ingester's wall clock (UTC) when the frame was grabbed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from contract.records import CameraHealth, Frame
from contract.settings import Settings
from contract.topics import CAMERA_HEALTH, VIDEO_FRAMES
from ingest.publisher import Publisher
from ingest.rtsp_capture import (
    TRANSPORTS,
    Backoff,
    CaptureThread,
    RtspOptions,
    Sampled,
    Sampler,
    encode_frame,
)
from ingest.rtsp_health import HealthWatch
from storage.cameras import CameraRow, load_cameras
from storage.registry_listen import ALL, RegistryListener

__all__ = ["TRANSPORTS", "Backoff", "CameraState", "RtspIngester", "RtspOptions", "Sampler",
           "encode_frame", "parse_camera_option"]

log = logging.getLogger(__name__)
HEALTH_BACKLOG = 1000  # health records kept while the broker is away (newest win)


def parse_camera_option(option: str) -> CameraRow:
    """``ID=URL`` from the command line."""
    camera, sep, url = option.partition("=")
    if not sep or not camera or not url:
        raise ValueError(f"--camera must be ID=URL, got {option!r}")
    return CameraRow(camera.strip(), url.strip())


@dataclass
class CameraState:
    """What the loop knows of one camera (only the loop touches it)."""

    camera: CameraRow
    queue: deque[Sampled]
    watch: HealthWatch
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    detail: str = ""
    seq: int = 0
    published: int = 0
    dropped: int = 0
    thread: CaptureThread | None = None
    task: asyncio.Task | None = None


class RtspIngester:
    """Runs every camera of the registry (and ``extra``) until ``stop`` is set."""

    def __init__(self, settings: Settings, publisher: Publisher,
                 options: RtspOptions | None = None, extra: list[CameraRow] | None = None,
                 use_registry: bool = True) -> None:
        self.settings, self.publisher = settings, publisher
        self.options = options or RtspOptions()
        self.extra = extra or []
        self.use_registry = use_registry and bool(settings.database_url)
        self.cameras: dict[str, CameraState] = {}
        self.health: deque[CameraHealth] = deque(maxlen=HEALTH_BACKLOG)
        self.health_wake = asyncio.Event()
        self.health_sent = 0
        self.pool = None

    # -- lifecycle -------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        if self.use_registry:
            from storage.db import open_pool

            self.pool = await open_pool(self.settings.database_url, max_size=2)
        await self._sync()
        sender = asyncio.create_task(self._send_health(), name="rtsp-health")
        next_registry = time.monotonic() + self.options.registry_every_s
        changed = asyncio.Event()  # set by registry notices: sync now, not at the next poll

        def on_registry(kind: str) -> None:
            if kind in ("camera", ALL):
                changed.set()
        listener = (RegistryListener(self.settings.database_url or "", on_registry).start()
                    if self.use_registry else None)
        try:
            while not stop.is_set():
                self._watch()
                if time.monotonic() >= next_registry or changed.is_set():
                    changed.clear()
                    next_registry = time.monotonic() + self.options.registry_every_s
                    await self._sync()
                try:
                    await asyncio.wait_for(stop.wait(), timeout=0.25)
                except TimeoutError:
                    pass
        finally:
            if listener is not None:
                await listener.stop()
            for state in list(self.cameras.values()):
                self._stop_camera(state)
            # let each capture release its stream: a C++ thread still inside OpenCV when the
            # interpreter exits aborts the process ("terminate called without ...")
            for state in list(self.cameras.values()):
                if state.thread is not None:
                    await asyncio.to_thread(state.thread.join, 15.0)
            await self._drain_health(sender)
            if self.pool is not None:
                await self.pool.close()

    async def _sync(self) -> None:
        """Start cameras that are new (or whose URL changed), stop removed ones."""
        wanted = {c.id: c for c in self.extra}
        if self.use_registry and self.pool is not None:
            try:
                for row in await load_cameras(self.pool):
                    wanted.setdefault(row.id, row)
            except Exception as exc:  # database away: keep what runs
                log.error("cannot read the camera registry: %s", exc)
                return
        for camera_id, state in list(self.cameras.items()):
            if camera_id not in wanted or wanted[camera_id].url != state.camera.url:
                self._stop_camera(state)
                del self.cameras[camera_id]
        for camera_id, row in wanted.items():
            if camera_id not in self.cameras:
                self._start_camera(row)
        if not self.cameras:
            log.warning("no cameras: register them in the cameras table or pass --camera")

    def _start_camera(self, row: CameraRow) -> None:
        watch = HealthWatch(row.id, self.options, started=time.monotonic())
        state = CameraState(row, deque(maxlen=self.options.queue_size), watch)
        loop = asyncio.get_running_loop()
        state.thread = CaptureThread(row, self.options, loop,
                                     lambda item: self._on_frame(state, item),
                                     lambda event: self._on_event(state, event))
        state.task = asyncio.create_task(self._publish(state), name=f"rtsp-publish-{row.id}")
        self.cameras[row.id] = state
        state.thread.start()
        log.info("camera %s: capturing %s", row.id, _redact(row.url))

    def _stop_camera(self, state: CameraState) -> None:
        if state.thread is not None:
            state.thread.stop()
        if state.task is not None:
            state.task.cancel()

    # -- frames (on the loop) --------------------------------------------------------
    def _on_frame(self, state: CameraState, item: Sampled) -> None:
        if len(state.queue) == state.queue.maxlen:
            state.dropped += 1  # the deque drops the oldest on append
        state.queue.append(item)
        state.wake.set()

    def _on_event(self, state: CameraState, event: str) -> None:
        state.detail = event
        log.info("camera %s: %s", state.camera.id, event)

    async def _publish(self, state: CameraState) -> None:
        backoff = Backoff(0.5, 10.0)
        while True:
            if not state.queue:
                state.wake.clear()
                await state.wake.wait()
                continue
            item = state.queue.popleft()
            state.seq += 1
            frame = Frame(camera=state.camera.id, time=item.time, seq=state.seq,
                          width=item.width, height=item.height, jpeg=item.jpeg)
            try:
                await self.publisher.publish(VIDEO_FRAMES, state.camera.id, frame)
                state.published += 1
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker away: this frame is lost, newer ones wait
                state.dropped += 1
                delay = backoff.next()
                log.error("camera %s: publish failed (%s); retry in %.1fs", state.camera.id,
                          exc, delay)
                await asyncio.sleep(delay)

    # -- health ----------------------------------------------------------------------
    def fps(self, state: CameraState) -> float:
        return round(state.thread.fps, 2) if state.thread is not None else 0.0

    def _watch(self) -> None:
        now, wall = time.monotonic(), datetime.now(UTC)
        for state in self.cameras.values():
            thread = state.thread
            record = state.watch.check(now, wall, thread.last_grab if thread else None,
                                       thread.last_grab_time if thread else None,
                                       self.fps(state), state.detail)
            if record is None:
                continue
            if record.transition or record.detail == "periodic":
                log.info("camera %s: %s (fps %.1f, %s)", record.camera,
                         "online" if record.online else "offline", record.fps or 0.0,
                         record.detail)
            self.health.append(record)  # a full backlog drops its oldest
            self.health_wake.set()

    async def _send_health(self) -> None:
        """Health records are not perishable: each is retried until the broker has it."""
        backoff = Backoff(0.5, 10.0)
        while True:
            if not self.health:
                self.health_wake.clear()
                await self.health_wake.wait()
                continue
            record = self.health[0]
            try:
                await self.publisher.publish(CAMERA_HEALTH, record.camera, record)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker away: keep it, try again
                delay = backoff.next()
                log.error("camera health publish failed (%s); retry in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            if self.health and self.health[0] is record:
                self.health.popleft()
            self.health_sent += 1
            backoff.reset()

    async def _drain_health(self, sender: asyncio.Task, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.health and time.monotonic() < deadline and not sender.done():
            await asyncio.sleep(0.05)
        sender.cancel()
        try:
            await sender
        except asyncio.CancelledError:
            pass


def _redact(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
