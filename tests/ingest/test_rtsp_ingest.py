"""RTSP ingest against a real RTSP server (rtsp-server-perl fed by ffmpeg) and real Kafka."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer

from contract.records import Frame
from contract.settings import Settings
from ingest.publisher import Publisher
from ingest.rtsp import Backoff, RtspIngester, RtspOptions, Sampler, encode_frame
from offsite.rtsp_server import RtspTestServer
from offsite.services import EmbeddedServices, ServiceError
from storage.cameras import CameraRow

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "video" / "person_room.mp4"


@pytest.fixture()
def rtsp_server(services: EmbeddedServices) -> Iterator[RtspTestServer]:
    server = RtspTestServer(services.state_dir / f"rtsp-{uuid.uuid4().hex[:6]}", SAMPLE)
    try:
        server.start()
    except ServiceError as exc:
        pytest.fail(f"RTSP test server did not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


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


async def _consume(settings: Settings, topic: str, key: bytes, until: object,
                   timeout: float) -> list:
    """Messages of ``key`` on ``topic`` (from the start) until ``until(messages)`` holds."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None)
    await consumer.start()
    seen: list = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(seen):  # type: ignore[operator]
            batches = await consumer.getmany(timeout_ms=500)
            seen += [m for msgs in batches.values() for m in msgs if m.key == key]
    finally:
        await consumer.stop()
    return seen


def _kind(message: object) -> str:
    return json.loads(message.value)["kind"]  # type: ignore[attr-defined]


def _health(database_url: str, camera: str) -> list[tuple[bool, float | None, str]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT online, fps, detail FROM camera_health WHERE camera = %s"
                            " ORDER BY time", (camera,)).fetchall()


async def _wait_health(database_url: str, camera: str, online: bool, count: int,
                       timeout: float) -> list:
    deadline = time.monotonic() + timeout
    rows: list = []
    while time.monotonic() < deadline:
        rows = _health(database_url, camera)
        if sum(1 for r in rows if r[0] is online) >= count:
            return rows
        await asyncio.sleep(0.3)
    raise AssertionError(f"no {'online' if online else 'offline'} #{count} for {camera}: {rows}")


def test_rtsp_to_kafka_with_outage_and_reconnect(services: EmbeddedServices, migrated_db: str,
                                                 rtsp_server: RtspTestServer) -> None:
    camera = f"cam-{uuid.uuid4().hex[:8]}"
    settings = Settings(broker_url=services.broker_url, database_url=migrated_db, partitions=2)
    options = RtspOptions(rate=2.0, transport="udp", stall_s=2.0, signal_loss_s=2.0,
                          read_timeout_s=2.0, backoff_initial_s=0.3, backoff_max_s=1.5)
    key = camera.encode()

    async def scenario() -> None:
        publisher = Publisher(settings, source="rtsp")
        await publisher.start()
        stop = asyncio.Event()
        ingester = RtspIngester(settings, publisher, options,
                                [CameraRow(camera, rtsp_server.url)], use_registry=False)
        task = asyncio.create_task(ingester.run(stop))
        try:
            # frames at the analysis rate, keyed by camera, decodable, downscaled
            await _wait_health(migrated_db, camera, True, 1, timeout=40)
            await asyncio.sleep(5)
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
            assert _health(migrated_db, camera)[0][:1] == (True,)
            fps = ingester.fps(ingester.cameras[camera])
            assert 7 <= fps <= 13, fps  # the source runs at 10 fps
            print(f"published {rate:.2f} frames/s, capture {fps:.1f} fps, "
                  f"jpeg {sum(len(f.jpeg) for f in frames) // len(frames)} bytes")

            # the camera goes away: offline, then a signal_loss clue
            rtsp_server.kill()
            killed = datetime.now(UTC)
            await _wait_health(migrated_db, camera, False, 1, timeout=15)
            clue_key = f"subject:{camera}".encode()
            # a worker running in the same session may add motion clues for this camera
            clues = await _consume(settings, "clues", clue_key,
                                   lambda m: any(_kind(x) == "signal_loss" for x in m), 20)
            opened = next(json.loads(c.value) for c in clues if _kind(c) == "signal_loss")
            assert (opened["modality"], opened["kind"], opened["state"]) == \
                ("video", "signal_loss", "open")
            assert opened["subject"] == camera
            assert datetime.fromisoformat(opened["start"]) <= killed + timedelta(seconds=1)

            print(f"signal_loss open {(datetime.now(UTC) - killed).total_seconds():.1f}s"
                  " after the kill")
            # it comes back: reconnect with backoff, online again, the clue closes
            await asyncio.sleep(1.0)
            rtsp_server.start()
            back = time.monotonic()
            await _wait_health(migrated_db, camera, True, 2, timeout=30)
            reconnect_s = time.monotonic() - back
            # issue 10: a camera that comes back is reconnected within 10 s (backoff capped)
            assert reconnect_s < 10, f"online again only {reconnect_s:.1f}s after the restart"
            print(f"online again {reconnect_s:.1f}s after the restart")
            clues = await _consume(settings, "clues", clue_key,
                                   lambda m: any(_kind(x) == "signal_loss" and
                                                 json.loads(x.value)["state"] == "closed"
                                                 for x in m), 20)
            closed = next(json.loads(c.value) for c in clues if _kind(c) == "signal_loss"
                          and json.loads(c.value)["state"] == "closed")
            assert closed["start"] == opened["start"] and closed["end"] is not None
            print(f"closed {time.monotonic() - back:.1f}s after the restart")
            assert ingester.cameras[camera].thread.connects >= 2  # type: ignore[union-attr]
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=15)
            await publisher.stop()

    asyncio.run(scenario())
