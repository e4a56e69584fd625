"""The HJ 212 server follows the registry live: a changed password or a retired station
takes effect without a restart (``LISTEN offsite_registry``), long before the periodic
refresh (an hour here). Real Kafka and PostgreSQL; the changes are made as the API makes
them (``storage.resources``); refused frames get 9011 with the standard's QnRtn and are kept
in ``ingest.rejected`` with the reason."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer

from contract.records import Reading, Rejected
from contract.settings import Settings
from ingest.hj212 import Frame, build, parse_frame
from ingest.hj212.server import QN_RTN, Hj212Server, StationRegistry
from ingest.publisher import Publisher
from offsite.services import EmbeddedServices
from storage.db import open_pool
from storage.resources import create, retire, update

CST = timezone(timedelta(hours=8))
ADMIN = {"id": "root", "department": "center", "role": "admin"}


@pytest.fixture(scope="module")
def settings(services: EmbeddedServices, migrated_db: str) -> Settings:
    with psycopg.connect(migrated_db) as conn:
        conn.execute("INSERT INTO departments (id, name) VALUES ('center', 'Center')"
                     " ON CONFLICT DO NOTHING")
    return Settings(broker_url=services.broker_url, database_url=migrated_db, partitions=2)


def _frame(mn: str, n: int, pw: str) -> bytes:
    reading = Reading(station=mn, period="hour", time=datetime(2026, 3, 2, n % 24, tzinfo=CST),
                      values={"a34004": 10.0 + n})
    return build.data_frame(reading, st="22", pw=pw, qn=f"20260302{n:09d}", ack=True).encode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _until(port: int, mn: str, pw: str, want: str, first: int,
                 timeout: float = 15.0) -> tuple[Frame, bytes, int]:
    """Send frames (one connection each) until the answer is ``want`` (CN or QnRtn)."""
    n = first
    deadline = time.monotonic() + timeout
    while True:
        n += 1
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = _frame(mn, n, pw)
        writer.write(data)
        await writer.drain()
        answer = parse_frame(await asyncio.wait_for(reader.readline(), 15))
        writer.close()
        if want in (answer.cn, answer.extra.get("QnRtn")):
            return answer, data, n
        assert time.monotonic() < deadline, f"still {answer.cn} {answer.extra}"
        await asyncio.sleep(0.2)


def test_password_change_and_retirement_reach_a_running_server(settings: Settings) -> None:
    mn = f"L{uuid.uuid4().hex[:8].upper()}"
    url = settings.database_url or ""

    async def main() -> tuple[bytes, list[bytes]]:
        pool = await open_pool(url, max_size=2)
        publisher = Publisher(settings, source="hj212-tcp")
        await publisher.start()
        await create(pool, "station", mn, {"lon": 116.4, "lat": 39.9, "password": "old",
                                           "owner_dept": "center"}, ADMIN)
        server = Hj212Server(publisher, StationRegistry(url, refresh_s=3600))
        stop, port = asyncio.Event(), _free_port()
        serving = asyncio.create_task(server.serve(stop, port=port))
        try:
            while server.server is None:
                await asyncio.sleep(0.05)
            answer, _, n = await _until(port, mn, "old", "9014", 0)
            await update(pool, "station", mn, {"password": "new"}, ADMIN)
            await _until(port, mn, "new", "9014", n)  # without a restart
            answer, _, n = await _until(port, mn, "old", str(QN_RTN["pw"]), n + 100)
            assert answer.cn == "9011"
            await retire(pool, "station", mn, ADMIN)
            answer, refused, n = await _until(port, mn, "new", str(QN_RTN["mn"]), n + 100)
            assert answer.cn == "9011"
        finally:
            stop.set()
            await serving
            await publisher.stop()
            await pool.close()
        consumer = AIOKafkaConsumer("ingest.rejected", bootstrap_servers=settings.kafka_bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        kept: list[bytes] = []
        try:
            deadline = time.monotonic() + 30
            while refused not in [Rejected.loads(v).raw for v in kept]:
                assert time.monotonic() < deadline
                batches = await consumer.getmany(timeout_ms=500)
                kept += [m.value for msgs in batches.values() for m in msgs]
        finally:
            await consumer.stop()
        return refused, kept

    refused, kept = asyncio.run(main())
    reasons = [Rejected.loads(v).reason for v in kept if Rejected.loads(v).raw == refused]
    assert reasons == [f"HJ 212: unknown MN {mn!r}"]
