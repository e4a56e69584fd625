"""The registry as a running process holds it: current rows, a router, kept live.

A worker routes clues over the registered zones and rules and judges readings with the
stations' intervals and standards; all of that must follow ``offsite registry import`` and
the API without a restart. ``LiveRegistry`` reads the active rows (``load_registry``),
rebuilds what depends on a kind when that kind changes (the router on ``zone`` and
``routing_rule``), and listens (``RegistryListener``): each notice reloads its kind, a
reconnect everything. Readers take ``registry.router`` or ``registry.stations`` at the
moment they need them; a reload swaps whole objects, so a reader never sees half a change.

The optional ``on_change(kind)`` runs after each reload, for what a process builds on top
(``ALL`` after a full reload).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from psycopg_pool import AsyncConnectionPool

from geo.registry import router_from_rows
from geo.routing import Router
from storage.registry_listen import ALL, KINDS, RegistryListener, load_registry

log = logging.getLogger(__name__)
OnChange = Callable[[str], Awaitable[None] | None]


class LiveRegistry:
    """Active registry rows by kind, the router over them, and the listener keeping both."""

    def __init__(self, pool: AsyncConnectionPool, database_url: str,
                 on_change: OnChange | None = None) -> None:
        self.pool = pool
        self.database_url = database_url
        self.on_change = on_change
        self.rows: dict[str, list[dict]] = {kind: [] for kind in KINDS}
        self.stations: dict[str, dict] = {}
        self.router: Router = router_from_rows([], [])
        self.version = 0
        self._lock = asyncio.Lock()
        self._listener: RegistryListener | None = None

    async def start(self) -> LiveRegistry:
        """Load everything, then listen (the listener's first call reloads once more, which
        covers a change made between the two)."""
        await self.reload(ALL)
        self._listener = RegistryListener(self.database_url, self.reload).start()
        return self

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None

    @property
    def listening(self) -> asyncio.Event | None:
        return self._listener.listening if self._listener is not None else None

    def known_station(self, station: str) -> bool:
        """Whether readings of ``station`` come from an active registered station."""
        return station in self.stations

    async def reload(self, kind: str = ALL) -> None:
        """Re-read ``kind`` (``ALL``, or an unknown kind: everything) and rebuild."""
        kinds = None if kind == ALL or kind not in KINDS else [kind]
        async with self._lock:  # notices come one at a time, but start() races the first
            rows = await load_registry(self.pool, kinds)
            self.rows = {**self.rows, **rows}
            if "station" in rows:
                self.stations = {r["id"]: r for r in rows["station"]}
            if "zone" in rows or "routing_rule" in rows:
                self.router = router_from_rows(self.rows["zone"], self.rows["routing_rule"])
            self.version += 1
        log.info("registry reloaded (%s): %s", kind,
                 ", ".join(f"{len(v)} {k}" for k, v in rows.items()))
        if self.on_change is not None:
            result = self.on_change(ALL if kinds is None else kind)
            if inspect.isawaitable(result):
                await result
