"""The live registry in the worker: routing and station info follow registry changes.

At start the worker loads the registered zones and routing rules from the database and
routes with them; until then the clue exit holds clues back (they would be routed over no
zones). Afterwards a ``LISTEN offsite_registry`` connection (``storage.registry_listen``)
reports every change (``offsite registry import``, the API's resource endpoints): a change
of zones, rules or departments rebuilds the router; a change of stations or cameras makes
the agents forget their cached entries, so the next batch reads the new interval, standard,
location or camera config. After a reconnect everything is reloaded (notices sent while
the connection was down are lost).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from storage.registry import load_router_async
from storage.registry_listen import ALL, RegistryListener

if TYPE_CHECKING:
    from streams.app import Streams

log = logging.getLogger(__name__)
ROUTING_KINDS = {"zone", "routing_rule", "department", ALL}


class RegistryWatch:
    """Loads the router, then follows ``offsite_registry`` notices."""

    def __init__(self, streams: Streams) -> None:
        self.streams = streams
        self.loaded = asyncio.Event()
        self.reloads = 0
        streams.clue_exit.hold_until = self.loaded

        async def registry_watch() -> None:
            await self.run()

        streams.app.task(registry_watch)

    async def run(self) -> None:
        url = self.streams.settings.database_url
        if not url:
            raise RuntimeError("database_url is not set")
        # the listener calls back with ALL once connected: that is the first load
        async with RegistryListener(url, self.changed):
            await asyncio.Event().wait()  # until the worker stops (cancelled)

    async def changed(self, kind: str) -> None:
        if kind in ROUTING_KINDS:
            delay = 0.5
            while True:
                try:
                    pool = await self.streams.db_pool()
                    async with pool.connection() as conn:
                        router = await load_router_async(conn)
                    break
                except Exception as exc:  # database away: the old router stays meanwhile
                    log.error("registry reload failed (%s); retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
            self.streams.set_router(router)
            self.reloads += 1
            log.info("registry: routing over %d zones and %d rules (%s changed)",
                     len(router.index.zones), len(router.rules), kind)
            self.loaded.set()
        self.streams.registry_changed(kind)


def register(streams: Streams) -> Any:
    return RegistryWatch(streams)
