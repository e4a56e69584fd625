"""PostgreSQL LISTEN/NOTIFY: the channels the migrations' triggers notify, and a listener.

Triggers number every change of ``clues`` and ``tasks`` (``event_seq``) and notify
``offsite_clues`` (``migrations/004_users_access.sql``) and ``offsite_tasks``
(``migrations/005_tasks.sql``). The API wakes its live streams and its task pusher on those
notices and then reads the changed rows from the tables, so a notice is only a wake-up.
The channel names belong to the migrations, hence to storage, and so does the ``LISTEN``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

CLUES_CHANNEL = "offsite_clues"
TASKS_CHANNEL = "offsite_tasks"
RISK_CHANNEL = "offsite_risk"  # entities queued for a risk recompute (migrations/013)


@contextlib.asynccontextmanager
async def listen(database_url: str, channel: str, connect_timeout: int = 10
                 ) -> AsyncIterator[AsyncGenerator[psycopg.Notify, None]]:
    """A dedicated autocommit connection LISTENing on ``channel``; yields its notices.

    The ``LISTEN`` is in place when the block is entered, so a caller that reads the table
    then misses nothing; the connection closes when the block ends (or raises, e.g. when the
    database goes away: the caller reconnects).
    """
    async with await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, connect_timeout=connect_timeout) as conn:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        notices = conn.notifies()
        try:
            yield notices
        finally:  # a generator left waiting holds the connection's lock: close it first
            await notices.aclose()


OnNotice = Callable[[str | None], Awaitable[None] | None]


async def follow(database_url: str, channel: str, on_notice: OnNotice, *, name: str,
                 on_lost: Callable[[], None] | None = None,
                 max_backoff_s: float = 10.0) -> None:
    """LISTEN on ``channel`` for good: ``on_notice(None)`` each time the LISTEN is in place
    (catch up on whatever changed while not listening), then ``on_notice(payload)`` per
    notice. When the database goes away, ``on_lost()`` and reconnect with a backoff up to
    ``max_backoff_s``. Every follower of a channel (the API's live streams, task pusher,
    risk recomputer, joint-inspection watch; the workers' registry reload) is this loop."""
    backoff = 0.5
    while True:
        try:
            async with listen(database_url, channel) as notices:
                backoff = 0.5
                await _call(on_notice, None)
                async for notice in notices:
                    await _call(on_notice, notice.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database gone: the follower's poll (if any) covers
            if on_lost is not None:
                on_lost()
            log.warning("%s: %s; reconnecting in %.1fs", name, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)


async def _call(on_notice: OnNotice, payload: str | None) -> None:
    result = on_notice(payload)
    if inspect.isawaitable(result):
        await result
