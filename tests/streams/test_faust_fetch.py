"""The worker's Kafka consumer waits ``consumer_fetch_wait_s`` per fetch, not Faust's 1.5 s
(``streams/faust_fetch.py``), and aiokafka still builds its fetcher from that attribute."""

from __future__ import annotations

import asyncio
import inspect

from aiokafka import AIOKafkaConsumer

from contract.settings import Settings
from streams.app import build_streams


def test_worker_consumer_uses_the_configured_fetch_wait() -> None:
    streams = build_streams(Settings(consumer_fetch_wait_s=0.05), modules=())
    thread = streams.app.consumer._thread

    async def make() -> AIOKafkaConsumer:  # aiokafka wants a running loop
        return thread._create_worker_consumer(thread.transport)

    assert asyncio.run(make())._fetch_max_wait_ms == 50
    # the patched attribute is what start() hands to the Fetcher
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(
        AIOKafkaConsumer.start)
