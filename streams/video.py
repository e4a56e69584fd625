"""Video agent: ``video.frames`` to ``clues``, one camera detector per camera.

Frames of a camera share a key, so they arrive in order on one partition and thus in one
worker. Each camera gets a *lane*: a small queue (oldest frame dropped when analysis falls
behind: the newest picture matters) and a task that decodes the JPEG and runs
``CameraDetector.observe`` (the video plug-in) in a thread pool, off the event loop, so
several cameras are analysed in parallel while each camera's frames stay in order. Clues
leave through the one clue exit (``streams.publish``), routed by the camera's location when
it has one.

The analyzers live in the worker's memory and are built from the camera's ``config`` in
the ``cameras`` table (defaults for a camera not registered; the ``ingest`` key, if any,
is for the ingester and ignored here); the config is re-read every ``CONFIG_EVERY_S`` and
a changed one rebuilds the analyzer. State is not checkpointed: after a rebalance moves a
camera to another worker, or after a restart, the new analyzer re-learns its background
and its tamper reference (``tamper.learn_frames`` samples) and episodes open on the old
worker are not continued there. A lane idle for ``IDLE_S`` closes its open episodes and
is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram

from contract.clue import Clue
from contract.records import Frame
from contract.topics import VIDEO_FRAMES
from detectors.video_config import CameraConfig
from detectors.video_plugin import CameraDetector
from storage.cameras import load_camera_config
from storage.sinks import RejectedSink
from streams.sinks import PoolSource, decode_or_reject, flush_until_durable

if TYPE_CHECKING:
    from streams.app import Streams

log = logging.getLogger(__name__)
LANE_QUEUE = 8
CONFIG_EVERY_S = 60.0
IDLE_S = 300.0
STREAMING_S = 2.0
# what capacity planning (and ``bench.bench_video_latency``'s saturation search) reads on the
# worker's /metrics (``worker_metrics_port``): analysed < cameras x rate, drops, or a growing
# lag mean the worker no longer keeps up with its cameras
FRAMES_ANALYSED = Counter("offsite_video_frames_analysed_total",
                          "frames the camera detectors have analysed")
FRAMES_DROPPED = Counter("offsite_video_frames_dropped_total",
                         "frames dropped unanalysed: a camera's lane queue was full")
FRAME_LAG = Histogram("offsite_video_frame_lag_seconds",
                      "capture of a frame to the end of its analysis",
                      buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0))
LANE_BACKLOG = Gauge("offsite_video_lane_backlog_frames",
                     "frames waiting in the cameras' lane queues")
STREAMING = Gauge("offsite_video_cameras_streaming",
                  f"cameras whose frames reached the worker in the last {STREAMING_S:g} s")
executor = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2),
                              thread_name_prefix="video-analyze")


def camera_config(camera: str, raw: dict[str, Any] | None) -> CameraConfig:
    """The analyzer config of a camera from its registry ``config`` (None: defaults)."""
    data = {k: v for k, v in (raw or {}).items() if k not in ("ingest", "location")}
    data["camera_id"] = camera
    return CameraConfig.model_validate(data)


SendClues = Callable[[Sequence[Clue]], Awaitable[Any]]



@dataclass
class Lane:
    camera: str
    send_clues: SendClues
    db_pool: PoolSource
    lanes: dict[str, Lane]
    queue: deque[Frame] = field(default_factory=lambda: deque(maxlen=LANE_QUEUE))
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    analyzer: CameraDetector | None = None
    raw_config: dict[str, Any] | None = None
    config_at: float = 0.0
    last_time: datetime | None = None
    dropped: int = 0
    analysed: int = 0
    task: asyncio.Task | None = None
    pushed_at: float = 0.0

    def push(self, frame: Frame) -> None:
        self.pushed_at = time.monotonic()
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
            FRAMES_DROPPED.inc()
        self.queue.append(frame)
        self.wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.queue:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=IDLE_S)
                except TimeoutError:
                    await self._retire(loop)
                    return
                continue
            frame = self.queue.popleft()
            if self.last_time is not None and frame.time <= self.last_time:
                continue  # re-delivered after a rebalance or a restart of the ingester
            await self._ensure_analyzer(loop)
            assert self.analyzer is not None
            try:
                clues = await loop.run_in_executor(executor, self.analyzer.observe, frame)
            except Exception:
                log.exception("camera %s: analysis of frame %s failed", self.camera, frame.seq)
                continue
            self.last_time = frame.time
            self.analysed += 1
            FRAMES_ANALYSED.inc()
            FRAME_LAG.observe(max(0.0, time.time() - frame.time.timestamp()))
            location = (self.raw_config or {}).get("location")
            for clue in clues:
                if clue.location is None and location:
                    clue.location = location  # routes the clue to the zone the camera watches
            if clues:
                await self.send_clues(clues)

    async def _ensure_analyzer(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.analyzer is not None and time.monotonic() - self.config_at < CONFIG_EVERY_S:
            return
        self.config_at = time.monotonic()
        try:
            raw = await load_camera_config(await self.db_pool(), self.camera)
        except Exception as exc:  # database away: keep (or start with) what we have
            log.error("camera %s: cannot read its config (%s)", self.camera, exc)
            raw = self.raw_config
        if self.analyzer is not None and raw == self.raw_config:
            return
        try:
            config = camera_config(self.camera, raw)
        except Exception as exc:
            log.error("camera %s: invalid config (%s); using defaults", self.camera, exc)
            config = camera_config(self.camera, None)
        if self.analyzer is not None:
            await self._flush(loop)
        self.raw_config = raw
        self.analyzer = CameraDetector(config)
        log.info("camera %s: analyzer built (%d zones, %d lines)", self.camera,
                 len(config.zones), len(config.lines))

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the analyzer's open episodes (config changed, or the lane retires)."""
        assert self.analyzer is not None
        clues = await loop.run_in_executor(executor, self.analyzer.flush, self.last_time)
        if clues:
            await self.send_clues(clues)

    async def _retire(self, loop: asyncio.AbstractEventLoop) -> None:
        self.lanes.pop(self.camera, None)
        if self.analyzer is not None:
            await self._flush(loop)
        log.info("camera %s: idle for %.0fs, analyzer dropped", self.camera, IDLE_S)


class VideoAgent:
    """The ``video.frames`` agent and its per-camera lanes."""

    def __init__(self, streams: Streams) -> None:
        self.lanes: dict[str, Lane] = {}
        self.send_clues: SendClues = streams.clue_exit.publish
        LANE_BACKLOG.set_function(lambda: sum(len(lane.queue) for lane in self.lanes.values()))
        STREAMING.set_function(lambda: sum(time.monotonic() - lane.pushed_at < STREAMING_S
                                           for lane in self.lanes.values()))

        async def video_frames(stream: Any) -> None:
            dead = RejectedSink()
            async for raw in stream:
                frame = decode_or_reject(VIDEO_FRAMES, raw, dead)
                if len(dead):
                    await flush_until_durable(streams.db_pool, dead)
                if isinstance(frame, Frame):
                    self.push(frame, streams.db_pool)

        self.agent = streams.app.agent(streams.topic(VIDEO_FRAMES),
                                       name="streams.video.video_frames")(video_frames)
        streams.on_registry_change.append(self.registry_changed)

    def registry_changed(self, kind: str) -> None:
        """A camera's config changed: every lane re-reads its own before the next frame."""
        if kind in ("camera", "*"):
            for lane in self.lanes.values():
                lane.config_at = 0.0

    def push(self, frame: Frame, db_pool: PoolSource) -> None:
        lane = self.lanes.get(frame.camera)
        if lane is None or lane.task is None or lane.task.done():
            lane = self.lanes[frame.camera] = Lane(frame.camera, self.send_clues, db_pool,
                                                   self.lanes)
            lane.task = asyncio.create_task(lane.run(), name=f"video-lane-{frame.camera}")
        lane.push(frame)


def register(streams: Streams) -> VideoAgent:
    return VideoAgent(streams)
