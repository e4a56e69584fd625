"""A real RTSP server (rtsp-server-perl fed by ffmpeg) playing the sample clip, per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from offsite.rtsp_server import RtspTestServer
from offsite.services import EmbeddedServices, ServiceError

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
