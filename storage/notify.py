"""PostgreSQL LISTEN/NOTIFY: the channels the migrations' triggers notify, and a listener.

Triggers number every change of ``clues`` and ``tasks`` (``event_seq``) and notify
``offsite_clues`` (``migrations/004_users_access.sql``) and ``offsite_tasks``
(``migrations/005_tasks.sql``). The API wakes its live streams and its task pusher on those
notices and then reads the changed rows from the tables, so a notice is only a wake-up.
The channel names belong to the migrations, hence to storage, and so does the ``LISTEN``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

import psycopg
from psycopg import sql

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
