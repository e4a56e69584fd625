"""RTSP ingest against a real RTSP server (rtsp-server-perl fed by ffmpeg) and real Kafka.

The ingester only ingests: frames to ``video.frames`` and health records to
``camera.health``. The signal-loss detector is run here on the health records it published,
as the worker's camera health agent runs it, to show that they carry what it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import psycopg
from aiokafka import AIOKafkaConsumer

from contract.records import CameraHealth, Frame, Record
from contract.settings import Settings
from contract.topics import TopicSpec
from detectors.video_signal import SignalLossConfig, observe
from ingest.publisher import Publisher
from ingest.rtsp import Backoff, RtspIngester, RtspOptions, Sampler, encode_frame
from ingest.rtsp_health import HealthWatch
from offsite.rtsp_server import RtspTestServer
from offsite.services import EmbeddedServices
from storage.cameras import CameraRow


def test_backoff_grows_with_jitter_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, rng=lambda: 1.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next() == 0.5
    low = Backoff(1.0, 8.0, rng=lambda: 0.0)
    assert [low.next() for _ in range(3)] == [0.5, 1.0, 2.0]  # equal jitter: [d/2, d]


def test_sampler_takes_the_analysis_rate_of_a_faster_stream() -> None:
    sampler = Sampler(2.0)
    taken = [i for i in range(100) if sampler.due(i / 10)]  # 10 fps for 10 s
    assert len(taken) == 20
    late = Sampler(2.0)
    assert late.due(0.0) and late.due(5.0) and not late.due(5.1)  # no burst after a gap


def test_encode_frame_downscales_and_keeps_aspect() -> None:
    frame = np.zeros((432, 768, 3), np.uint8)
    width, height, jpeg = encode_frame(frame, 640, 80)
    assert (width, height) == (640, 360)
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (360, 640, 3)
    assert encode_frame(np.zeros((100, 200, 3), np.uint8), 640, 80)[:2] == (200, 100)


async def _consume(settings: Settings, topic: str, key: bytes | None, until: object,
                   timeout: float) -> list:
    """Messages of ``key`` (None: all) on ``topic`` (from the start) until
    ``until(messages)`` holds."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None)
    await consumer.start()
    seen: list = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(seen):  # type: ignore[operator]
            batches = await consumer.getmany(timeout_ms=500)
            seen += [m for msgs in batches.values() for m in msgs if key is None or m.key == key]
    finally:
        await consumer.stop()
    return seen


class HealthLog:
    """Every ``camera.health`` record of one camera, read as they come (one consumer)."""

    def __init__(self, settings: Settings, camera: str) -> None:
        self.settings, self.key = settings, camera.encode()
        self.records: list[CameraHealth] = []
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer("camera.health", group_id=None, enable_auto_commit=False,
                                    bootstrap_servers=self.settings.kafka_bootstrap,
                                    auto_offset_reset="earliest")
        await consumer.start()
        self.task = asyncio.create_task(self._read(consumer))

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                self.records += [CameraHealth.loads(m.value) for msgs in batches.values()
                                 for m in msgs if m.key == self.key]
        finally:
            await consumer.stop()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def wait(self, what: str, predicate: Callable[[CameraHealth], bool],
                   timeout: float, after: int = 0) -> int:
        """Index of the first record from ``after`` on that matches ``predicate``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(after, len(self.records)):
                if predicate(self.records[i]):
                    return i
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {what} record: {self.records[after:]}")


def transition(online: bool) -> Callable[[CameraHealth], bool]:
    return lambda r: r.transition and r.online is online


def heartbeat(online: bool) -> Callable[[CameraHealth], bool]:
    return lambda r: not r.transition and r.online is online


def test_health_watch_reports_transitions_heartbeats_and_the_signal_loss_moment() -> None:
    options = RtspOptions(stall_s=5, signal_loss_s=30, health_every_s=60, offline_every_s=10,
                          open_timeout_s=10)
    watch = HealthWatch("CAM", options, started=0.0)
    wall = datetime(2026, 3, 1, tzinfo=UTC)

    def at(now: float, last: float | None) -> CameraHealth | None:
        return watch.check(now, wall + timedelta(seconds=now), last,
                           None if last is None else wall + timedelta(seconds=last), 10.0,
                           "stream ended")

    assert at(1, None) is None  # connecting
    assert at(2, 1.9).transition and watch.online  # type: ignore[union-attr]
    assert at(30, 29.9) is None and at(62.1, 62.0).detail == "periodic"  # type: ignore
    offline = at(70, 64.0)
    assert offline and offline.transition and not offline.online and offline.fps == 0.0
    assert offline.last_frame == wall + timedelta(seconds=64)
    assert at(75, 64.0) is None and at(80, 64.0).detail == "stream ended"  # type: ignore
    loss = at(94.1, 64.0)  # 30 s after the last frame, between two heartbeats
    assert loss and not loss.transition and loss.signal_loss_s == 30
    assert at(95, 64.0) is None and not at(104.2, 64.0).online  # type: ignore[union-attr]


class TopicsSeen(Publisher):
    """The real publisher, noting which topics it sends to."""

    topics: set[str]

    async def send(self, topic: TopicSpec, key: str, record: Record) -> asyncio.Future:
        self.topics = getattr(self, "topics", set()) | {topic.name}
        return await super().send(topic, key, record)


def test_rtsp_to_kafka_with_outage_and_reconnect(services: EmbeddedServices, fresh_db: str,
                                                 rtsp_server: RtspTestServer) -> None:
    # a database of its own: a worker of another test in this session may consume the shared
    # broker's camera.health and write rows into the session's database
    camera = f"cam-{uuid.uuid4().hex[:8]}"
    settings = Settings(broker_url=services.broker_url, database_url=fresh_db, partitions=2)
    options = RtspOptions(rate=2.0, transport="udp", stall_s=2.0, signal_loss_s=3.0,
                          health_every_s=3.0, offline_every_s=1.0, read_timeout_s=2.0,
                          backoff_initial_s=0.3, backoff_max_s=1.5)
    key = camera.encode()

    async def scenario() -> None:
        publisher = TopicsSeen(settings, source="rtsp")
        await publisher.start()
        health = HealthLog(settings, camera)
        await health.start()
        stop = asyncio.Event()
        ingester = RtspIngester(settings, publisher, options,
                                [CameraRow(camera, rtsp_server.url)], use_registry=False)
        task = asyncio.create_task(ingester.run(stop))
        try:
            # online: a transition, then heartbeats while nothing changes
            await health.wait("online transition", transition(True), timeout=40)
            await asyncio.sleep(5)  # past the burst of frames the server had buffered
            beat = await health.wait("online heartbeat", heartbeat(True), timeout=10)
            record = health.records[beat]
            assert record.detail == "periodic" and (record.fps or 0) > 0, record
            assert record.last_frame is not None
            assert timedelta(0) <= record.time - record.last_frame < timedelta(seconds=1)

            # frames at the analysis rate, keyed by camera, decodable, downscaled
            messages = await _consume(settings, "video.frames", key, lambda m: len(m) >= 6, 15)
            frames = [Frame.loads(m.value) for m in messages]
            assert len(frames) >= 6, len(frames)
            span = (frames[-1].time - frames[0].time).total_seconds()
            rate = (len(frames) - 1) / span
            assert 1.4 <= rate <= 2.6, (rate, len(frames), span)
            assert [f.seq for f in frames] == list(range(1, len(frames) + 1))
            for frame in frames:
                assert frame.camera == camera and (frame.width, frame.height) == (640, 360)
                image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
                assert image.shape == (360, 640, 3) and image.mean() > 10
            assert abs(datetime.now(UTC) - frames[-1].time) < timedelta(seconds=30)
            fps = ingester.fps(ingester.cameras[camera])
            assert 7 <= fps <= 13, fps  # the source runs at 10 fps
            print(f"published {rate:.2f} frames/s, capture {fps:.1f} fps, "
                  f"jpeg {sum(len(f.jpeg) for f in frames) // len(frames)} bytes")

            # the camera goes away: an offline transition, then heartbeats carry time on
            rtsp_server.kill()
            killed = datetime.now(UTC)
            down = await health.wait("offline transition", transition(False), timeout=15)
            offline = health.records[down]
            assert offline.last_frame is not None and offline.fps == 0.0
            assert offline.last_frame <= killed + timedelta(seconds=1)
            assert offline.signal_loss_s == 3.0
            await health.wait("offline heartbeat", lambda r: heartbeat(False)(r) and
                              r.time - offline.last_frame >= timedelta(seconds=3),  # type: ignore
                              timeout=10, after=down)

            # what the worker's detector makes of them: a signal_loss clue
            clues, state = [], None
            for record in list(health.records):
                found, state = observe(state, record, SignalLossConfig())
                clues += found
            assert [c.state for c in clues] == ["open"], clues
            opened = clues[0]
            assert (opened.kind, opened.subject) == ("signal_loss", camera)
            assert opened.start == offline.last_frame
            print(f"signal_loss open at {(opened.time - killed).total_seconds():.1f}s"
                  " after the kill")

            # it comes back: reconnect with backoff, online again, the clue closes
            await asyncio.sleep(1.0)
            rtsp_server.start()
            back = time.monotonic()
            await health.wait("online again", transition(True), timeout=30, after=down)
            reconnect_s = time.monotonic() - back
            # issue 10: a camera that comes back is reconnected within 10 s (backoff capped)
            assert reconnect_s < 10, f"online again only {reconnect_s:.1f}s after the restart"
            print(f"online again {reconnect_s:.1f}s after the restart")
            for record in list(health.records):  # those judged already are ignored
                found, state = observe(state, record, SignalLossConfig())
                clues += found
            assert [c.state for c in clues][-1] == "closed", clues
            assert clues[-1].clue_id == opened.clue_id and clues[-1].end is not None
            assert ingester.cameras[camera].thread.connects >= 2  # type: ignore[union-attr]
            times = [r.time for r in health.records]
            assert times == sorted(times) and len(set(times)) == len(times)
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=15)
            await health.stop()
            await publisher.stop()

        # the ingester only ingests: no health rows, no clues of its own
        with psycopg.connect(fresh_db) as conn:
            assert conn.execute("SELECT count(*) FROM camera_health WHERE camera = %s",
                                (camera,)).fetchone() == (0,)
        # and it sends frames, health and dead letters only (no clue of its own)
        assert publisher.topics <= {"video.frames", "camera.health", "ingest.rejected"}
        assert {"video.frames", "camera.health"} <= publisher.topics

    asyncio.run(scenario())
