"""RTSP capture: one thread per camera reading frames, sampling and JPEG-encoding them.

One capture thread per camera (OpenCV's FFmpeg backend) reads the stream, grabs every
frame (decoding is what keeps the demuxer in step) and converts only the frames sampled
at the analysis rate (default 2 fps): they are downscaled (at most 640 px wide by
default), JPEG-encoded and handed to the asyncio loop with ``call_soon_threadsafe``. A
camera that cannot be opened or stops sending is reconnected with exponential backoff and
jitter (reset once frames flow again). The thread records when it last grabbed a frame
(monotonic and wall clock) and its fps; ``ingest.rtsp`` turns that into health records.

Nothing here talks to Kafka or the database: it is the decoding half of the ingester.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import cv2
import numpy as np

from storage.cameras import CameraRow

TRANSPORTS = {"tcp": "rtsp_transport;tcp", "udp": "rtsp_transport;udp",
              "prefer_tcp": "rtsp_flags;prefer_tcp"}


@dataclass
class RtspOptions:
    """How the ingester captures, samples and reports; ``offsite ingest rtsp`` sets some."""

    rate: float = 2.0                 # frames/s published per camera (the analysis rate)
    max_width: int = 640              # downscale wider frames to this width
    jpeg_quality: int = 80
    stall_s: float = 5.0              # no frame for this long: offline (a transition)
    signal_loss_s: float = 30.0       # no frame for this long: signal loss (travels with
                                      # every health record; a heartbeat marks the moment)
    health_every_s: float = 60.0      # heartbeat while online and nothing changes
    offline_every_s: float = 5.0      # heartbeat while offline: carries time forward
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    queue_size: int = 4               # sampled frames waiting per camera
    transport: str = "tcp"            # tcp, udp or prefer_tcp (OpenCV's default)
    registry_every_s: float = 60.0    # re-read the cameras table this often


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
