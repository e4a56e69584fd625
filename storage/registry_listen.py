"""Live registry: ``LISTEN offsite_registry``, for processes that follow registry changes.

Whoever changes the registry (``offsite registry import``, the API's resource endpoints)
sends ``NOTIFY offsite_registry, '<kind>'`` inside its transaction, so the notice arrives
on commit, once per kind changed: ``department``, ``station``, ``camera``,
``scene_collection``, ``zone`` or ``routing_rule``.

``RegistryListener`` holds one connection per process and calls a callback with the kind.
A notice is lost while the connection is down, so after every (re)connect the callback gets
``ALL`` ("reload everything"): a process that reloads on each call never misses a change
for longer than the reconnect. Processes keep their slow poll as a fallback anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable

from psycopg import AsyncConnection

from storage.notify import follow

log = logging.getLogger(__name__)
CHANNEL = "offsite_registry"
KINDS = ("department", "station", "camera", "scene_collection", "zone", "routing_rule")
ALL = "*"
Callback = Callable[[str], Awaitable[None] | None]


async def notify(conn: AsyncConnection, kind: str) -> None:
    """Tell listeners that ``kind`` changed (delivered when the transaction commits)."""
    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, kind))


class RegistryListener:
    """One LISTEN connection; calls ``callback(kind)`` per notice, ``ALL`` after connecting.

    Callbacks run one at a time, in order, on the listener's task; one that raises is
    logged and the listener goes on. ``start()`` needs a running event loop.
    """

    def __init__(self, database_url: str, callback: Callback, *,
                 max_backoff_s: float = 10.0) -> None:
        self.url = database_url
        self.callback = callback
        self.max_backoff_s = max_backoff_s
        self.listening = asyncio.Event()
        self.notices = 0
        self._task: asyncio.Task | None = None

    def start(self) -> RegistryListener:
        self._task = asyncio.create_task(self._run(), name="registry-listener")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.listening.clear()

    async def __aenter__(self) -> RegistryListener:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _call(self, kind: str) -> None:
        try:
            result = self.callback(kind)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("registry listener: callback failed for %r", kind)

    async def _run(self) -> None:
        async def notice(payload: str | None) -> None:
            if payload is None:  # listening (again): whatever changed while we were not
                self.listening.set()
                await self._call(ALL)
                return
            self.notices += 1
            await self._call(payload or ALL)

        # database away: the caller's poll covers meanwhile
        await follow(self.url, CHANNEL, notice, name="registry listener",
                     on_lost=self.listening.clear, max_backoff_s=self.max_backoff_s)
