"""The one Faust app and its topics, built from the one settings object.

Topics carry raw bytes; agents decode them with ``streams.records`` so that a record that
does not validate becomes a dead letter instead of crashing the agent.
"""

from __future__ import annotations

import asyncio

import faust
from psycopg_pool import AsyncConnectionPool

from offsite.settings import Settings, get_settings
from storage.db import open_pool
from streams import faust_fixes
from streams.topics import ALL_TOPICS, TopicSpec

faust_fixes.apply()  # before any consumer exists: offset book-keeping fixes (see module)


def create_app(settings: Settings) -> faust.App:
    return faust.App(
        settings.app_id,
        broker=settings.broker_url or "kafka://127.0.0.1:9092",
        store="memory://",
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=100,
        broker_commit_interval=1.0,
        # also the JoinGroup rebalance timeout. Too short (10 s) and a busy worker is dropped
        # from the group mid-batch (seen: UnknownMemberId, then a stalled rebalance); Faust's
        # default (1000 s) keeps a crashed worker's partitions idle for long
        broker_max_poll_interval=settings.rebalance_timeout_s,
        web_enabled=False,
        loghandlers=[],
    )


settings = get_settings()
app = create_app(settings)
topics: dict[str, faust.TopicT] = {
    spec.name: app.topic(spec.name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=settings.partitions)
    for spec in ALL_TOPICS
}


def topic(spec: TopicSpec) -> faust.TopicT:
    return topics[spec.name]


_pool: AsyncConnectionPool | None = None
_pool_lock: asyncio.Lock | None = None


async def db_pool() -> AsyncConnectionPool:
    """The worker's connection pool, opened on first use inside the worker's loop.

    Agents ask for it concurrently at start-up: a lock makes sure only one pool is opened
    (a second one, overwritten, would be garbage-collected with its worker tasks pending).
    """
    global _pool, _pool_lock
    if _pool is None:
        if not settings.database_url:
            raise RuntimeError("database_url is not set")
        if _pool_lock is None:
            _pool_lock = asyncio.Lock()
        async with _pool_lock:
            if _pool is None:
                _pool = await open_pool(settings.database_url)
    return _pool
