"""Kafka side of every ingester: declare topics, publish records, keep rejected input.

``publish`` returns only when the broker has acknowledged the message (acks=all), which is
what lets an ingester ack MQTT or reply to a data logger afterwards.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from contract.input_rules import InputError, clean_context, clean_text, dead_letter, truncate_raw
from contract.records import Record, Rejected
from contract.settings import Settings
from contract.topic_admin import ensure_topics
from contract.topics import INGEST_REJECTED, TopicSpec

log = logging.getLogger(__name__)


class Publisher:
    """One producer per process; records are keyed as ``contract.topics`` says."""

    def __init__(self, settings: Settings, source: str) -> None:
        self.settings = settings
        self.source = source
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all",
            enable_idempotence=False, linger_ms=5, max_request_size=8 * 1024 * 1024)
        self.sent = 0
        self.rejected = 0

    async def start(self) -> None:
        await ensure_topics(self.settings)
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def redeclare_topics(self) -> bool:
        """Declare the topics again after a publish failed; True if that worked.

        A broker that lost its state (a restarted Tansu with memory storage, a recreated
        cluster) would otherwise auto-create them on first use with its own partition count.
        Best effort, bounded: the caller retries anyway.
        """
        try:
            await asyncio.wait_for(ensure_topics(self.settings, attempts=1), timeout=10)
            return True
        except Exception as exc:  # broker still away
            log.info("topics not redeclared yet: %s", exc or type(exc).__name__)
            return False

    async def publish(self, topic: TopicSpec, key: str, record: Record) -> None:
        await (await self.send(topic, key, record))

    async def send(self, topic: TopicSpec, key: str, record: Record) -> asyncio.Future:
        """Queue a record; the returned future resolves when the broker acknowledged it.

        A record over ``max_record_bytes`` raises ``InputError`` (permanent) before it reaches
        the producer: the broker's ``MessageSizeTooLargeError`` would come only later, and
        Faust's consumers refuse records near 1 MB anyway.
        """
        value = record.dumps()
        if len(value) > self.settings.max_record_bytes:
            raise InputError(f"record of {len(value)} bytes is over max_record_bytes "
                             f"({self.settings.max_record_bytes})")
        future = await self.producer.send(topic.name, value, key=key.encode())
        self.sent += 1
        return future

    async def reject(self, raw: bytes, reason: str, **context: Any) -> None:
        """Keep input that cannot be used, with its bytes (the first ``rejected_raw_max``, plus
        the size and hash of the whole), source and reason. Reason and context are cleaned of
        NUL and lone surrogates: the dead-letter writer must never choke on what it keeps."""
        kept, whole = truncate_raw(bytes(raw), self.settings.rejected_raw_max)
        reason = clean_text(reason, 2000)
        record = Rejected(time=datetime.now(UTC), source=self.source, reason=reason, raw=kept,
                          context=clean_context({**context, **whole}))
        log.warning("rejected input from %s: %s", self.source, reason[:300])
        await self.producer.send_and_wait(INGEST_REJECTED.name, record.dumps(),
                                          key=self.source.encode())
        dead_letter(self.source)
        self.rejected += 1
