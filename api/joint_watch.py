"""Groups new tasks into joint inspections as they appear (one per API process).

Clue tasks are opened by the database (a trigger on ``clues``), so no API call sees them
being made. Like the task pusher (``api/task_push.py``), this watcher LISTENs on the tasks
channel and, on every notice and after every (re)connect, looks at the tasks changed since
the last one it saw: open tasks that name an entity and belong to no inspection yet are
grouped with the other open tasks at their entities (``storage.inspections.merge_joint``).
Grouping is idempotent and serialised by an advisory lock, so several API processes doing
the same work is harmless. Draws group their own tasks when they are made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from contract.settings import get_settings
from storage import inspections as store
from storage.notify import TASKS_CHANNEL, follow

log = logging.getLogger(__name__)


class JointWatch:
    def __init__(self, database_url: str, pool: object, utc_offset_hours: float) -> None:
        self.url = database_url
        self.pool = pool
        self.offset = utc_offset_hours
        self.last_seq: int | None = None
        self.merged = 0

    async def catch_up(self) -> None:
        seq, entities = await store.ungrouped_since(self.pool, self.last_seq)
        if entities:
            self.merged += len(await store.merge_entities(self.pool, entities, self.offset))
        self.last_seq = seq

    async def run(self) -> None:
        await follow(self.url, TASKS_CHANNEL, lambda _: self.catch_up(), name="joint watch")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    watch = JointWatch(settings.database_url or "", app.state.pool,
                       settings.local_utc_offset_hours)
    task = asyncio.create_task(watch.run(), name="joint-watch")
    app.state.joint_watch = watch
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
