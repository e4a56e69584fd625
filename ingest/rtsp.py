"""RTSP ingester: IP cameras to ``video.frames``, camera health and signal-loss clues.

One capture thread per camera (OpenCV's FFmpeg backend) reads the stream, grabs every
frame (decoding is what keeps the demuxer in step) and converts only the frames sampled
at the analysis rate (default 2 fps): they are downscaled (at most 640 px wide by
default), JPEG-encoded and handed to the asyncio loop with ``call_soon_threadsafe`` into
a small per-camera queue. A full queue drops its *oldest* frame: under back-pressure
(a slow or absent broker) the newest picture matters and memory stays bounded. The loop
publishes :class:`contract.records.Frame` to ``video.frames`` keyed by camera.

A camera that cannot be opened or stops sending is reconnected with exponential backoff
and jitter (reset once frames flow again). The loop watches every camera: no frame for
``stall_s`` is an *offline* transition, the next frame an *online* one; transitions and a
periodic fps figure go to ``camera_health``. No frame for ``signal_loss_s`` (counted from
the last frame, so at least ``stall_s``) opens a ``signal_loss`` clue (modality video) on
the ``clues`` topic, updated while it lasts and closed when frames come back. Open
signal-loss clues in the database are resumed at start, so an ingester restart during an
outage does not leave one open for ever.

Frame times are the ingester's wall clock (UTC) when the frame was grabbed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import cv2
import numpy as np

from contract.clue import Clue
from contract.records import Frame
from contract.settings import Settings
from contract.topics import CLUES, VIDEO_FRAMES
from ingest.publisher import Publisher
from storage.cameras import CameraRow, HealthRow, load_cameras, open_clue_starts, write_health
from storage.registry_listen import ALL, RegistryListener

log = logging.getLogger(__name__)
DETECTOR = "offsite.ingest.rtsp"
SIGNAL_LOSS_RULE = "camera/signal_loss"
TRANSPORTS = {"tcp": "rtsp_transport;tcp", "udp": "rtsp_transport;udp",
              "prefer_tcp": "rtsp_flags;prefer_tcp"}


@dataclass
class RtspOptions:
    rate: float = 2.0                 # frames/s published per camera (the analysis rate)
    max_width: int = 640              # downscale wider frames to this width
    jpeg_quality: int = 80
    stall_s: float = 5.0              # no frame for this long: offline
    signal_loss_s: float = 30.0       # offline for this long: signal_loss clue
    update_every_s: float = 30.0      # re-send an open signal_loss clue this often
    health_every_s: float = 60.0      # periodic camera_health row while nothing changes
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    queue_size: int = 4               # sampled frames waiting per camera
    transport: str = "tcp"            # tcp, udp or prefer_tcp (OpenCV's default)
    registry_every_s: float = 60.0    # re-read the cameras table this often


def parse_camera_option(option: str) -> CameraRow:
    """``ID=URL`` from the command line."""
    camera, sep, url = option.partition("=")
    if not sep or not camera or not url:
        raise ValueError(f"--camera must be ID=URL, got {option!r}")
    return CameraRow(camera.strip(), url.strip())


class Backoff:
    """Exponential backoff with equal jitter: a delay in [d/2, d], d doubling to a cap."""

    def __init__(self, initial: float, maximum: float, factor: float = 2.0,
                 rng: Callable[[], float] = random.random) -> None:
        self.initial, self.maximum, self.factor, self.rng = initial, maximum, factor, rng
        self.attempt = 0

    def next(self) -> float:
        delay = min(self.maximum, self.initial * self.factor ** self.attempt)
        self.attempt += 1
        return delay * (0.5 + 0.5 * self.rng())

    def reset(self) -> None:
        self.attempt = 0


class FpsMeter:
    """Frames per second over a sliding window of arrival times."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self.times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self.times.append(now)
        while self.times and now - self.times[0] > self.window_s:
            self.times.popleft()

    def fps(self, now: float) -> float:
        while self.times and now - self.times[0] > self.window_s:
            self.times.popleft()
        if len(self.times) < 2:
            return 0.0
        span = max(now - self.times[0], self.times[-1] - self.times[0])
        return (len(self.times) - 1) / span if span > 0 else 0.0


class Sampler:
    """Takes frames at ``rate`` per second of arrival time, without drifting or bursting."""

    def __init__(self, rate: float) -> None:
        self.period = 1.0 / rate if rate > 0 else 0.0
        self.next_due: float | None = None

    def due(self, now: float) -> bool:
        if self.next_due is not None and now < self.next_due:
            return False
        if self.next_due is None or now - self.next_due >= self.period:
            self.next_due = now + self.period  # first frame, or fell behind: restart
        else:
            self.next_due += self.period
        return True


def encode_frame(frame: np.ndarray, max_width: int, quality: int) -> tuple[int, int, bytes]:
    """Downscale to at most ``max_width`` and JPEG-encode; returns (width, height, jpeg)."""
    height, width = frame.shape[:2]
    if max_width and width > max_width:
        height = max(1, round(height * max_width / width))
        width = max_width
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return width, height, buf.tobytes()


@dataclass
class Sampled:
    time: datetime
    width: int
    height: int
    jpeg: bytes


_capture_env_lock = threading.Lock()


def open_capture(url: str, options: RtspOptions) -> cv2.VideoCapture:
    """Open with FFmpeg, the transport set and open/read timeouts (interrupt callbacks)."""
    with _capture_env_lock:  # OpenCV reads the options from the environment at open
        if options.transport in TRANSPORTS:
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = TRANSPORTS[options.transport]
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(options.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(options.read_timeout_s * 1000)])


class CaptureThread(threading.Thread):
    """Reads one camera for ever (reconnecting) and hands sampled frames to the loop."""

    def __init__(self, camera: CameraRow, options: RtspOptions, loop: asyncio.AbstractEventLoop,
                 on_frame: Callable[[Sampled], None], on_event: Callable[[str], None]) -> None:
        super().__init__(name=f"rtsp-{camera.id}", daemon=True)
        self.camera, self.options, self.loop = camera, options, loop
        self.on_frame, self.on_event = on_frame, on_event
        self.stopping = threading.Event()
        self.meter = FpsMeter()
        self.fps = 0.0
        self.connects = 0
        self.last_grab: float | None = None  # monotonic; read by the loop's stall watch
        self.last_grab_time: datetime | None = None

    def stop(self) -> None:
        self.stopping.set()

    def _hand(self, fn: Callable, *args: object) -> bool:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
            return True
        except RuntimeError:  # loop closed: the ingester is gone
            self.stopping.set()
            return False

    def run(self) -> None:
        backoff = Backoff(self.options.backoff_initial_s, self.options.backoff_max_s)
        while not self.stopping.is_set():
            cap = open_capture(self.camera.url, self.options)
            if not cap.isOpened():
                delay = backoff.next()
                self._hand(self.on_event, f"cannot open stream; retry in {delay:.1f}s")
                self.stopping.wait(delay)
                continue
            self.connects += 1
            self._hand(self.on_event, "connected")
            frames = self._read(cap, backoff)
            cap.release()
            if self.stopping.is_set():
                break
            delay = backoff.next()
            self._hand(self.on_event, f"stream ended after {frames} frames; retry in {delay:.1f}s")
            self.stopping.wait(delay)

    def _read(self, cap: cv2.VideoCapture, backoff: Backoff) -> int:
        sampler = Sampler(self.options.rate)
        frames = 0
        while not self.stopping.is_set():
            if not cap.grab():  # end of stream, error, or read timeout
                return frames
            now = time.monotonic()
            self.last_grab, self.last_grab_time = now, datetime.now(UTC)
            frames += 1
            if frames == 1:
                backoff.reset()
            self.meter.tick(now)
            self.fps = self.meter.fps(now)
            if not sampler.due(now):
                continue
            moment = datetime.now(UTC)
            ok, image = cap.retrieve()
            if not ok or image is None:
                continue
            width, height, jpeg = encode_frame(image, self.options.max_width,
                                               self.options.jpeg_quality)
            if not self._hand(self.on_frame, Sampled(moment, width, height, jpeg)):
                return frames
        return frames


@dataclass
class CameraState:
    """What the loop knows of one camera (only the loop touches it)."""

    camera: CameraRow
    queue: deque[Sampled]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = field(default_factory=time.monotonic)
    online: bool | None = None
    last_frame: float | None = None           # monotonic
    last_frame_time: datetime | None = None   # wall clock
    offline_since: datetime | None = None
    loss_start: datetime | None = None        # open signal_loss clue
    loss_emitted: float = 0.0
    last_health: float = 0.0
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
        self.health: list[HealthRow] = []
        self.clues: asyncio.Queue[Clue] = asyncio.Queue()
        self.pool = None

    # -- lifecycle -------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        if self.settings.database_url:
            from storage.db import open_pool

            self.pool = await open_pool(self.settings.database_url, max_size=2)
        resumed = await self._resume_signal_loss()
        await self._sync()
        for camera, start in resumed.items():
            if camera in self.cameras:
                self.cameras[camera].loss_start = start
        sender = asyncio.create_task(self._send_clues(), name="rtsp-clues")
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
                await self._flush_health()
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
            await self._flush_health()
            await self._drain_clues(sender)
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
        state = CameraState(row, deque(maxlen=self.options.queue_size))
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
        state.last_frame = time.monotonic()
        state.last_frame_time = item.time
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

    # -- health and signal loss ------------------------------------------------------
    def fps(self, state: CameraState) -> float:
        return round(state.thread.fps, 2) if state.thread is not None else 0.0

    def _watch(self) -> None:
        now, wall = time.monotonic(), datetime.now(UTC)
        opts = self.options
        for state in self.cameras.values():
            grabbed = state.thread.last_grab if state.thread is not None else None
            last = max(filter(None, (grabbed, state.last_frame)), default=None)
            alive = last is not None and now - last < opts.stall_s
            if state.online is None and not alive and \
                    now - state.started < opts.open_timeout_s + opts.stall_s:
                continue  # still connecting (first open)
            if alive != state.online:
                state.online = alive
                state.last_health = now
                if alive:
                    state.offline_since = None
                    self._health(state, wall, True, "online")
                    if state.loss_start is not None:
                        self._signal_loss(state, "closed", wall)
                        state.loss_start = None
                else:
                    thread_time = state.thread.last_grab_time if state.thread else None
                    state.offline_since = thread_time or state.last_frame_time or wall
                    self._health(state, wall, False, state.detail or "no frames")
            elif now - state.last_health >= opts.health_every_s:
                state.last_health = now
                self._health(state, wall, alive, "periodic")
            if state.online is False and state.offline_since is not None:
                gone = (wall - state.offline_since).total_seconds()
                if state.loss_start is None and gone >= opts.signal_loss_s:
                    state.loss_start = state.offline_since
                    self._signal_loss(state, "open", wall)
                elif state.loss_start is not None and now - state.loss_emitted >= \
                        opts.update_every_s:
                    self._signal_loss(state, "update", wall)

    def _health(self, state: CameraState, wall: datetime, online: bool, detail: str) -> None:
        fps = self.fps(state) if online else 0.0
        log.info("camera %s: %s (fps %.1f, %s)", state.camera.id,
                 "online" if online else "offline", fps, detail)
        self.health.append(HealthRow(wall, state.camera.id, online, fps, detail[:200]))
        del self.health[:-1000]  # database away for long: keep the newest

    def _signal_loss(self, state: CameraState, clue_state: str, wall: datetime) -> None:
        assert state.loss_start is not None
        state.loss_emitted = time.monotonic()
        offline_s = (wall - state.loss_start).total_seconds()
        clue = Clue(
            modality="video", kind="signal_loss", rule=SIGNAL_LOSS_RULE,
            subject=state.camera.id, state=clue_state, start=state.loss_start, time=wall,
            end=wall if clue_state == "closed" else None, confidence=1.0,
            metrics={"offline_s": round(offline_s, 1), "reconnects": _connects(state)},
            summary=(f"camera {state.camera.id}: no video for {offline_s:.0f}s"
                     + (" (restored)" if clue_state == "closed" else "")
                     + (f"; {state.detail}" if state.detail and clue_state != "closed" else "")),
            detector=DETECTOR, detector_version="0.1.0",
            params={"stall_s": self.options.stall_s, "signal_loss_s": self.options.signal_loss_s})
        self.clues.put_nowait(clue)

    async def _send_clues(self) -> None:
        """Clues are not perishable: retry each until the broker has it, in order."""
        while True:
            clue = await self.clues.get()
            backoff = Backoff(0.5, 10.0)
            while True:
                try:
                    await self.publisher.producer.send_and_wait(
                        CLUES.name, clue.model_dump_json().encode(),
                        key=f"subject:{clue.subject}".encode())
                    log.info("camera %s: signal_loss %s", clue.subject, clue.state)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    delay = backoff.next()
                    log.error("clue publish failed (%s); retry in %.1fs", exc, delay)
                    await asyncio.sleep(delay)

    async def _drain_clues(self, sender: asyncio.Task, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.clues.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        sender.cancel()

    async def _flush_health(self) -> None:
        if not self.health or self.pool is None:
            return
        try:
            await write_health(self.pool, self.health)
            self.health.clear()
        except Exception as exc:  # keep the rows, try again on the next tick
            log.error("camera_health write failed: %s", exc)

    async def _resume_signal_loss(self) -> dict[str, datetime]:
        if self.pool is None:
            return {}
        try:
            return await open_clue_starts(self.pool, "signal_loss")
        except Exception as exc:
            log.error("cannot read open signal_loss clues: %s", exc)
            return {}


def _connects(state: CameraState) -> int:
    return state.thread.connects if state.thread is not None else 0


def _redact(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
