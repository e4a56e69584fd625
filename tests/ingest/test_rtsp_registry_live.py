"""The RTSP ingester starts a camera registered while it runs and stops a retired one,
without a restart and long before its registry poll (an hour here): ``LISTEN
offsite_registry``. Real RTSP server (rtsp-server-perl fed by ffmpeg), Kafka, PostgreSQL;
the camera is registered and retired as the API does it (``storage.resources``)."""

from __future__ import annotations

import asyncio
import time

import psycopg

from contract.settings import Settings
from ingest.publisher import Publisher
from ingest.rtsp import RtspIngester, RtspOptions
from offsite.rtsp_server import RtspTestServer
from offsite.services import EmbeddedServices
from storage.db import open_pool
from storage.resources import create, retire

ADMIN = {"id": "root", "department": "center", "role": "admin"}


def _published(ingester: RtspIngester, camera: str) -> int:
    """Frames of ``camera`` the ingester has handed to Kafka (acknowledged)."""
    state = ingester.cameras.get(camera)
    return state.published if state is not None else 0


def test_registered_camera_starts_and_retired_camera_stops(
        services: EmbeddedServices, fresh_db: str, rtsp_server: RtspTestServer) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO departments (id, name) VALUES ('center', 'Center')")
    settings = Settings(broker_url=services.broker_url, database_url=fresh_db, partitions=2)
    options = RtspOptions(rate=2.0, transport="udp", registry_every_s=3600.0)

    async def scenario() -> None:
        publisher = Publisher(settings, source="rtsp")
        await publisher.start()
        pool = await open_pool(fresh_db, max_size=2)
        stop = asyncio.Event()
        ingester = RtspIngester(settings, publisher, options)
        task = asyncio.create_task(ingester.run(stop))
        try:
            await asyncio.sleep(2.0)
            assert ingester.cameras == {}  # nothing registered yet
            await create(pool, "camera", "GATE-1", {"url": rtsp_server.url, "lon": 121.4,
                                                    "lat": 28.6, "owner_dept": "center"}, ADMIN)
            deadline = time.monotonic() + 40
            while _published(ingester, "GATE-1") < 2:  # its frames reach Kafka
                assert time.monotonic() < deadline, "the registered camera never came online"
                await asyncio.sleep(0.3)
            await retire(pool, "camera", "GATE-1", ADMIN)
            deadline = time.monotonic() + 10
            while "GATE-1" in ingester.cameras:
                assert time.monotonic() < deadline, "the retired camera still runs"
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=20)
            await publisher.stop()
            await pool.close()

    asyncio.run(scenario())
