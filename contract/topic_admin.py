"""Declaring the contract's topics on the broker, before anything produces or consumes.

Ingesters and the stream worker both declare them and must not import each other, so the
declaration lives with the topic list it declares.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contract.settings import Settings
from contract.topics import ALL_TOPICS


async def ensure_topics(settings: Settings, extra: tuple[str, ...] = (),
                        attempts: int = 30) -> None:
    """Create every topic with the configured partition count.

    Brokers auto-create topics on first use with their own default partition count, which
    breaks Faust tables (changelog partitions must equal source partitions); so topics are
    declared before anything produces or consumes.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    for attempt in range(attempts):
        try:
            await admin.start()
            break
        except Exception:  # broker still starting
            if attempt == attempts - 1:
                with contextlib.suppress(Exception):
                    await admin.close()
                raise
            await asyncio.sleep(1)
    try:
        existing = set(await admin.list_topics())
        wanted = [t.name for t in ALL_TOPICS] + list(extra)
        new = [NewTopic(name, settings.partitions, 1) for name in wanted if name not in existing]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
