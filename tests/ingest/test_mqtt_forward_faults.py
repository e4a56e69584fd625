"""MqttIngester._forward with Kafka away: it never acks, it redeclares the topics before
each retry, and a stop request ends it without acking (the MQTT session keeps the messages)."""

from __future__ import annotations

import asyncio
import json

from contract.settings import Settings
from ingest.mqtt import MqttIngester, _Message


class FailingPublisher:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[str] = []
        self.redeclared = 0

    async def send(self, topic: object, key: str, record: object) -> asyncio.Future:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("broker away")
        self.sent.append(key)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def reject(self, *a: object, **k: object) -> None:
        raise AssertionError("nothing here is invalid")

    async def redeclare_topics(self) -> bool:
        self.redeclared += 1
        return True


def _ingester(publisher: FailingPublisher) -> tuple[MqttIngester, list[int]]:
    settings = Settings(mqtt_url="mqtt://127.0.0.1:1", broker_url="kafka://127.0.0.1:1")
    ing = MqttIngester(settings, publisher)  # type: ignore[arg-type]
    acked: list[int] = []
    ing.client.ack = lambda mid, qos: acked.append(mid)  # type: ignore[method-assign]
    return ing, acked


def _batch() -> list[_Message]:
    doc = json.dumps({"time": "2026-11-25T08:00:00+08:00", "values": {"a34004": 1.0}})
    return [_Message("offsite/env/S1/json", doc.encode(), mid, 1) for mid in (7, 8)]


def test_retries_without_ack_then_acks_after_kafka() -> None:
    async def main() -> None:
        pub = FailingPublisher(failures=2)
        ing, acked = _ingester(pub)
        await asyncio.wait_for(ing._forward(_batch()), timeout=20)
        assert pub.redeclared == 2 and pub.sent == ["S1", "S1"] and acked == [7, 8]

    asyncio.run(main())


def test_stop_while_kafka_away_returns_without_ack() -> None:
    async def main() -> None:
        pub = FailingPublisher(failures=10**6)
        ing, acked = _ingester(pub)
        stop = asyncio.Event()
        stop.set()
        await asyncio.wait_for(ing._forward(_batch(), stop), timeout=10)
        assert acked == [] and pub.sent == []

    asyncio.run(main())
