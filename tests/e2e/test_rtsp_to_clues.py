"""RTSP camera to clues: real RTSP server, `offsite ingest rtsp` and the Faust worker.

The camera is registered in the cameras table (its config reaches the worker's analyzer);
the ingester publishes sampled frames, the worker's video agent finds the people walking
through the sample as motion; killing the RTSP server makes the camera go offline with a
signal_loss clue, and restarting it brings the camera back and closes the clue. The
ingester only reports the camera's health (``camera.health``); the worker's camera health
agent writes the ``camera_health`` rows and raises the signal_loss clue. The camera has no
position, so its clues are keyed ``subject:<camera>`` by the clue exit. The worker's
Prometheus /metrics count the camera's analysed frames.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families
from psycopg.types.json import Jsonb

from offsite.rtsp_server import RtspTestServer
from offsite.services import EmbeddedServices, ServiceError

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "video" / "person_room.mp4"


def _clues(bootstrap: str, camera: str, until: object, timeout: float) -> list[dict]:
    """Clues keyed ``subject:<camera>`` on the clues topic until ``until(clues)`` holds."""

    async def consume() -> list[dict]:
        consumer = AIOKafkaConsumer("clues", bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        seen: list[dict] = []
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not until(seen):  # type: ignore[operator]
                batches = await consumer.getmany(timeout_ms=500)
                seen += [json.loads(m.value) for msgs in batches.values() for m in msgs
                         if m.key == f"subject:{camera}".encode()]
        finally:
            await consumer.stop()
        return seen

    return asyncio.run(consume())


def _worker_metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {s.name: s.value for family in text_string_to_metric_families(text)
            for s in family.samples}


def _has(kind: str, state: str) -> object:
    return lambda clues: any(c["kind"] == kind and c["state"] == state for c in clues)


def test_rtsp_camera_to_clues_with_outage(flow: object, services: EmbeddedServices) -> None:
    camera = f"e2e-cam-{uuid.uuid4().hex[:6]}"
    server = RtspTestServer(services.state_dir / f"rtsp-{camera}", SAMPLE)
    try:
        server.start()
    except ServiceError as exc:
        pytest.fail(f"RTSP test server did not start: {exc}", pytrace=False)
    with psycopg.connect(flow.database_url) as conn:  # type: ignore[attr-defined]
        conn.execute("INSERT INTO cameras (id, url, config) VALUES (%s, %s, %s)",
                     (camera, server.url, Jsonb({"evidence": {"enabled": False}})))
    log = open(flow.logs / "ingest-rtsp.log", "wb")  # type: ignore[attr-defined]  # noqa: SIM115
    ingester = subprocess.Popen(
        [sys.executable, "-m", "offsite", "ingest", "rtsp", "--transport", "udp",
         "--stall-s", "2", "--signal-loss-s", "3", "--backoff-max-s", "2"],
        env=flow.env, stdout=log, stderr=subprocess.STDOUT)  # type: ignore[attr-defined]
    health = "SELECT online FROM camera_health WHERE camera = %s ORDER BY time"
    bootstrap = services.broker_url.split("://", 1)[-1]
    try:
        flow.wait_for(health, lambda rows: (True,) in rows, timeout=40,  # type: ignore
                      params=(camera,))
        clues = _clues(bootstrap, camera, _has("motion", "open"), timeout=60)
        motion = [c for c in clues if c["kind"] == "motion"]
        assert motion, f"no motion clue for {camera}: {clues}"
        assert motion[0]["modality"] == "video" and motion[0]["subject"] == camera
        assert motion[0]["evidence"] == []  # the registry's config reached the analyzer
        # the worker's /metrics show the camera streaming and its frames analysed
        metrics = _worker_metrics(flow.worker_metrics_port)  # type: ignore[attr-defined]
        assert metrics["offsite_video_frames_analysed_total"] > 0, metrics
        assert metrics["offsite_video_cameras_streaming"] >= 1, metrics
        assert metrics["offsite_video_frame_lag_seconds_count"] > 0, metrics

        server.kill()
        flow.wait_for(health, lambda rows: (False,) in rows, timeout=20,  # type: ignore
                      params=(camera,))
        clues = _clues(bootstrap, camera, _has("signal_loss", "open"), timeout=20)
        assert _has("signal_loss", "open")(clues), clues  # type: ignore[operator]

        server.start()
        flow.wait_for(health, lambda rows: rows.count((True,)) >= 2,  # type: ignore
                      timeout=30, params=(camera,))
        clues = _clues(bootstrap, camera, _has("signal_loss", "closed"), timeout=20)
        assert _has("signal_loss", "closed")(clues), clues  # type: ignore[operator]
    finally:
        ingester.send_signal(signal.SIGTERM)
        try:
            ingester.wait(timeout=20)
        except subprocess.TimeoutExpired:
            ingester.kill()
        log.close()
        server.stop()
        with psycopg.connect(flow.database_url) as conn:  # type: ignore[attr-defined]
            conn.execute("DELETE FROM cameras WHERE id = %s", (camera,))
