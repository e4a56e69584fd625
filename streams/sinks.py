"""Sink agents: topics to PostgreSQL in batches.

Faust acks a ``take`` batch only after the loop body returns, so offsets are committed
after the batch is durable. A database error therefore must not escape the body (Faust
would ack the batch on the way out): the flush is retried until it succeeds.

Batch wait. Faust's ``take(max, within)`` hands a batch on when it is full or when
``within`` has passed, so on an idle stream a record waits up to ``within``. Readings and
dead letters wait ``sink_batch_seconds`` (0.5 s: bigger COPYs); the clues sink, like the
other agents on a clue's path, waits ``clue_batch_seconds`` (0.05 s): an alert must not sit
in a buffer. Under load nothing changes much: records queue while a batch is written, and
the next batch takes what queued, up to ``sink_batch_size``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from contract.input_rules import Retry, clean_text
from contract.records import Record, Rejected
from contract.topics import CLUES, ENV_READINGS, INGEST_REJECTED, TopicSpec
from storage.sinks import CluesSink, CopySink, ReadingsSink, RejectedSink

if TYPE_CHECKING:
    from streams.app import Streams

log = logging.getLogger(__name__)

PoolSource = Callable[[], Awaitable[AsyncConnectionPool]]


async def flush_until_durable(db_pool: PoolSource, *sinks: CopySink,
                              max_attempts: int = 8) -> None:
    """Write the sinks' batches; an outage holds the batch (and its offsets) and retries for
    as long as it lasts. Rows the database refuses for good are isolated and kept as dead
    letters by the sink itself (``CopySink.flush``); an error that is neither a known outage
    nor a known bad input is retried ``max_attempts`` times, then the batch is kept as dead
    letters too (``contract.input_rules``), so one poison batch never stops the stream."""
    retry = Retry("sink", max_attempts)
    while True:
        try:
            pool = await db_pool()
            for sink in sinks:
                await sink.flush(pool)
            return
        except Exception as exc:
            if retry.failed(exc):
                log.error("database write failed for good (%s); the batch goes to the"
                          " dead-letter store", exc)
                pool = await db_pool()
                for sink in sinks:
                    if len(sink):
                        await sink.give_up(pool, exc)
                return
            log.error("database write failed (%s); retrying", exc)
            await retry.wait()


def decode_or_reject(spec: TopicSpec, raw: bytes, dead: RejectedSink,
                     decode: Callable[[bytes], Record] | None = None) -> Record | None:
    try:
        if decode is not None:  # a decoder shared with the topic's other agents
            return decode(raw)
        return spec.record.model_validate_json(raw)  # Record or the (plain pydantic) Clue
    except ValidationError as exc:
        dead.add(Rejected(time=datetime.now(UTC), source=f"stream:{spec.name}",
                          reason=f"invalid {spec.record.__name__}: {exc.errors()[0]['msg']}",
                          raw=raw if isinstance(raw, bytes) else str(raw).encode()))
        return None


def reject_failed(spec: TopicSpec, raw: bytes, dead: RejectedSink | None, what: str,
                  exc: Exception, context: dict[str, Any]) -> None:
    """Keep a record a detector failed on (a valid record, so not ``decode_or_reject``)
    with its bytes and the reason, so the stream goes on and nothing is lost."""
    if dead is not None:
        dead.add(Rejected(time=datetime.now(UTC), source=f"stream:{spec.name}",
                          reason=clean_text(f"{what} failed: {type(exc).__name__}: {exc}",
                                            2000),
                          raw=raw, context=context))


def sink_agent(streams: Streams, spec: TopicSpec, make_sink: Callable[[], CopySink],
               name: str, within: float | None = None, shared: bool = False) -> object:
    """A sink of ``spec``'s records; ``within`` is its batch wait (default
    ``sink_batch_seconds``; a sink on a clue's path waits ``clue_batch_seconds``).
    ``shared``: decode through the worker's decoder shared with the topic's other agents
    (``Streams.shared_decoder``), so a record is parsed once for all of them."""
    settings = streams.settings
    within = settings.sink_batch_seconds if within is None else within
    decode = streams.shared_decoder(spec) if shared else None

    async def run(stream: object) -> None:
        sink, dead = make_sink(), RejectedSink()

        def fill(batch: list[bytes]) -> None:
            for raw in batch:
                record = decode_or_reject(spec, raw, dead, decode)
                if record is not None:
                    sink.add(record)  # type: ignore[attr-defined]

        async for batch in stream.take(settings.sink_batch_size,  # type: ignore[attr-defined]
                                       within=within):
            # a batch can hold 50,000 readings: decoding them is CPU work, off the loop
            await asyncio.to_thread(fill, batch)
            await flush_until_durable(streams.db_pool, sink, dead,
                                      max_attempts=settings.retry_max_attempts)

    run.__name__ = name
    return streams.app.agent(streams.topic(spec), name=f"streams.sinks.{name}")(run)


def register(streams: Streams) -> dict[str, object]:
    return {
        "readings_sink": sink_agent(streams, ENV_READINGS, ReadingsSink, "readings_sink",
                                    shared=True),
        "rejected_sink": sink_agent(streams, INGEST_REJECTED, RejectedSink, "rejected_sink"),
        "clues_sink": sink_agent(streams, CLUES, lambda: CluesSink(streams.router),
                                 "clues_sink", within=streams.settings.clue_batch_seconds),
    }
