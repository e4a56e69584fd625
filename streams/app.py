"""The worker's Faust app, made by the worker entry point: nothing is built at import.

``build_streams(settings)`` checks the installed Faust and patches it (``faust_fixes``),
makes the app and one raw-bytes topic per contract topic, the router and the one clue exit,
and has every agent module register its agents and tables on it. Topics carry raw bytes;
agents decode them with ``contract.records`` so that a record that does not validate
becomes a dead letter instead of crashing the agent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from psycopg_pool import AsyncConnectionPool

from contract.records import EnvReadings, readings_of
from contract.settings import Settings
from contract.topics import ALL_TOPICS, CLUES, TopicSpec
from geo.routing import Router
from geo.zones import ZoneIndex
from storage.db import open_pool
from streams import faust_fetch, faust_fixes
from streams.publish import ClueExit
from streams.shared_decode import SharedDecode

log = logging.getLogger(__name__)


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


@dataclass
class Streams:
    """The app and what every agent module needs from it; one per worker process."""

    settings: Settings
    app: faust.App
    router: Router
    topics: dict[str, faust.TopicT]
    clue_exit: ClueExit
    agents: dict[str, Any] = field(default_factory=dict)
    on_registry_change: list[Callable[[str], None]] = field(default_factory=list)
    _pool: AsyncConnectionPool | None = None
    _pool_lock: asyncio.Lock | None = None
    _decoders: dict[str, SharedDecode] = field(default_factory=dict)

    def shared_decoder(self, spec: TopicSpec) -> SharedDecode:
        """The decoder of ``spec``'s records shared by this worker's agents on that topic;
        each agent calls this once at registration (the count says how long to hold a
        decoded record). ``env.readings`` records are held by their readings."""
        decoder = self._decoders.get(spec.name)
        if decoder is None:
            size = (lambda r: len(readings_of(r))) if spec.record is EnvReadings else \
                (lambda _: 1)
            decoder = self._decoders[spec.name] = SharedDecode(spec.record.model_validate_json,
                                                               size)
        decoder.consumers += 1
        return decoder

    def set_router(self, router: Router) -> None:
        """Route with ``router`` from now on (the registry changed)."""
        self.router = router
        self.clue_exit.router = router

    def registry_changed(self, kind: str) -> None:
        """Tell the agents that registry rows of ``kind`` (``*``: any) changed."""
        for callback in self.on_registry_change:
            callback(kind)

    def topic(self, spec: TopicSpec) -> faust.TopicT:
        return self.topics[spec.name]

    def batch_agent(self, topic: faust.TopicT, name: str,
                    handle: Callable[[Sequence[Any]], Awaitable[Any]], *, within: float,
                    what: str) -> Any:
        """An agent handing ``handle`` batches of events (``take_events``: each event's
        partition is known) of up to ``sink_batch_size``, waiting at most ``within`` when
        idle. A batch that fails is logged (``what`` names its records), never raised: an
        agent body that raised would stop consuming for good."""
        size = self.settings.sink_batch_size

        async def run(stream: Any) -> None:
            async for events in stream.take_events(size, within=within):
                try:
                    await handle(events)
                except Exception:
                    log.exception("%s: a batch of %d %s failed", name, len(events), what)

        run.__name__ = name.rsplit(".", 1)[-1]
        return self.app.agent(topic, name=name)(run)

    async def db_pool(self) -> AsyncConnectionPool:
        """The worker's connection pool, opened on first use inside the worker's loop.

        Agents ask for it concurrently at start-up: a lock makes sure only one pool is
        opened (a second one, overwritten, would be garbage-collected with its worker tasks
        pending).
        """
        if self._pool is None:
            if not self.settings.database_url:
                raise RuntimeError("database_url is not set")
            if self._pool_lock is None:
                self._pool_lock = asyncio.Lock()
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await open_pool(self.settings.database_url)
        return self._pool

    async def close_pool(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def build_streams(settings: Settings, router: Router | None = None,
                  modules: Sequence[str] | None = None) -> Streams:
    """The app with every agent registered (or those of ``modules``, for tests).

    ``router`` routes until the registry watch (one of the modules) has loaded the
    registry's; without that module it routes for good (tests).
    """
    from streams import agents  # the agent modules import this one for its types

    faust_fixes.apply()  # before any consumer exists; refuses a Faust it was not made for
    faust_fetch.apply(settings.consumer_fetch_wait_s)  # Tansu holds a fetch its whole wait
    app = create_app(settings)
    topics = {spec.name: app.topic(spec.name, key_type=bytes, value_type=bytes,
                                   key_serializer="raw", value_serializer="raw",
                                   partitions=settings.partitions)
              for spec in ALL_TOPICS}
    # routing over the registry's zones and rules comes with the registry watch
    # (streams.registry_watch); until it has loaded them the clue exit holds clues back
    router = router if router is not None else Router(ZoneIndex(()), [])
    streams = Streams(settings, app, router, topics, ClueExit(topics[CLUES.name], router))
    for name, register in agents.registrations(modules):
        streams.agents[name] = register(streams)
    return streams
