"""Keeps entity risk current: recomputes queued entities on notice, every entity now and then.

Why here and why so: the formula is Python (``oversight/risk.py``) and must see the clue
and its task result together, whichever process wrote them (the worker's clues sink, the
API's task report, a registry import). So the database only marks what changed: triggers
(``migrations/013_risk_history.sql``) queue the entities concerned in
``entity_risk_dirty`` and notify ``offsite_risk``. Each API process runs one
``RiskRecomputer``, as it runs one task pusher: it LISTENs, and on each notice (and after
every (re)connect, so nothing queued while no API ran is lost) drains the queue in a thread
with its own connection (``storage.risk.recompute_queued``: take, recompute, dequeue in one
transaction; rows another instance holds are skipped). A burst of clue updates costs one
notice per entity and one recompute per drain, not one per update. Every
``risk_refresh_s`` it recomputes every entity (the decay moves scores without events;
one instance at a time, by an advisory lock). Cheap: one indexed query per drain and a sum.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
from fastapi import FastAPI

from contract.settings import Settings, get_settings
from oversight.risk import RiskWeights
from storage import risk as store
from storage.notify import RISK_CHANNEL, follow

log = logging.getLogger(__name__)
DEBOUNCE_S = 0.2


class RiskRecomputer:
    """One LISTEN connection and one worker connection (in a thread) per process."""

    def __init__(self, database_url: str, settings: Settings) -> None:
        self.url = database_url
        self.weights = RiskWeights.from_settings(settings)
        self.step = settings.risk_history_step
        self.refresh_s = settings.risk_refresh_s
        self.recomputed = 0
        self._conn: psycopg.Connection | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="risk-listen"),
                       asyncio.create_task(self._work(), name="risk-work")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._conn is not None:
            await asyncio.to_thread(self._conn.close)

    async def _listen(self) -> None:
        # on connecting too: whatever was queued while not listening
        await follow(self.url, RISK_CHANNEL, lambda _: self._wake.set(), name="risk listener")

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        next_full = loop.time()  # at start: every entity (decay since the last run)
        while True:
            timeout = max(0.0, next_full - loop.time()) if self.refresh_s > 0 else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            full = self.refresh_s > 0 and loop.time() >= next_full
            await asyncio.sleep(DEBOUNCE_S)  # let a burst of notices gather
            try:
                await asyncio.to_thread(self._run, full)
                if full:
                    next_full = loop.time() + self.refresh_s
            except Exception as exc:  # database gone: try again shortly
                log.warning("risk recompute: %s", exc)
                self._drop()
                await asyncio.sleep(2.0)
                self._wake.set()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True)
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _run(self, full: bool) -> None:
        conn = self._connection()
        if full:
            done = store.recompute_all(conn, datetime.now(UTC), self.weights, self.step,
                                       exclusive=True)
            self.recomputed += len(done or ())
        while True:
            taken, done = store.recompute_queued(conn, datetime.now(UTC), self.weights,
                                                 self.step)
            self.recomputed += len(done)
            if not taken:
                break


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the app's lifespan: starts this process's recomputer."""
    settings = get_settings()
    recomputer = RiskRecomputer(settings.database_url or "", settings)
    recomputer.start()
    app.state.risk_recomputer = recomputer
    try:
        yield
    finally:
        await recomputer.stop()
