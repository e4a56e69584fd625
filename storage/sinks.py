"""Batched, idempotent writers: ``add`` rows, ``flush`` them in one transaction.

COPY cannot upsert, so a flush binary-COPYs the batch into a temporary staging table and
then ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` into the real table: re-delivered
messages (at-least-once) leave no duplicates. The caller commits its Kafka offsets only
after ``flush`` returns, when the rows are durable.

A batch that fails for good (``contract.input_rules.classify``: a NUL the database refuses,
a value out of range, a constraint) is bisected down to the rows that cause it; those go to
the ``rejected`` table (the row's repr and the reason) and the rest is written, so one bad
row never wedges a writer. An outage (connection lost) still raises: the caller retries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from contract.input_rules import clean_text, dead_letter, is_permanent
from contract.records import Clue, Reading, ReadingBatch, Rejected, readings_of
from geo.routing import Router
from storage.cameras import HealthRow
from storage.evidence_store import fix_clue_evidence
from storage.unregistered import note_unregistered


@dataclass
class CopySink:
    """A batch for one table; subclasses turn records into rows."""

    table: str
    columns: Sequence[str]
    types: Sequence[str]
    conflict: str = "DO NOTHING"
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def add_row(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)

    async def flush(self, pool: AsyncConnectionPool) -> int:
        """Write the batch; returns how many rows were new (rows that can never be written
        are in ``rejected`` then, see the module docstring)."""
        if not self.rows:
            return 0
        async with pool.connection() as conn:
            inserted = await self._write_isolating(conn, self.rows)
        self.rows.clear()
        return inserted

    async def _write_isolating(self, conn: AsyncConnection, rows: list[tuple[Any, ...]]) -> int:
        """Write ``rows``; on a permanent error, halve and retry each half, down to the rows
        that fail alone: k bad rows of n cost about 2k log2(n) small writes, once."""
        try:
            return await self._write(conn, rows)
        except Exception as exc:
            if not is_permanent(exc):
                raise  # the database is away: the caller holds the batch and retries
            if len(rows) == 1:
                await self._reject_row(conn, rows[0], exc)
                return 0
            mid = len(rows) // 2
            return (await self._write_isolating(conn, rows[:mid])
                    + await self._write_isolating(conn, rows[mid:]))

    async def give_up(self, pool: AsyncConnectionPool, exc: BaseException) -> int:
        """Move the whole batch to ``rejected`` (each row's repr and ``exc``) and clear it:
        for a caller whose bounded retries of an unknown error ran out. Returns the rows."""
        rows, self.rows = self.rows, []
        async with pool.connection() as conn:
            for row in rows:
                await self._reject_row(conn, row, exc)
        return len(rows)

    async def _reject_row(self, conn: AsyncConnection, row: tuple[Any, ...],
                          exc: BaseException) -> None:
        """Keep a row the table refuses in ``rejected``: its repr (bytea takes any byte) and
        the reason, cleaned of NUL; the same row refused again is stored once."""
        raw = repr(row).encode("utf-8", "backslashreplace")
        reason = clean_text(f"{self.table}: {type(exc).__name__}: {exc}", 2000)
        row_id = hashlib.sha256(self.table.encode() + b"\0" + raw).hexdigest()
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO rejected (id, time, source, reason, raw, context)"
                " VALUES (%s, now(), %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (row_id, f"sink:{self.table}", reason, raw,
                 Jsonb({"table": self.table, "columns": list(self.columns)})))
        dead_letter(f"sink:{self.table}")

    async def _staged(self, conn: AsyncConnection, stage: str) -> None:
        """What a table's sink does with the staged rows before they are inserted (in the
        same transaction); nothing by default."""

    async def _write(self, conn: AsyncConnection, rows: list[tuple[Any, ...]] | None = None
                     ) -> int:
        stage = f"stage_{self.table}"
        cols = ", ".join(f'"{c}"' for c in self.columns)
        async with conn.transaction():
            await conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {self.table} INCLUDING DEFAULTS)"
                " ON COMMIT DELETE ROWS")
            async with conn.cursor() as cur:
                async with cur.copy(f"COPY {stage} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(list(self.types))
                    for row in self.rows if rows is None else rows:
                        await copy.write_row(row)
                await self._staged(conn, stage)
                await cur.execute(
                    f"INSERT INTO {self.table} ({cols}) SELECT {cols} FROM {stage}"
                    f" ON CONFLICT {self.conflict}")
                return cur.rowcount


class ReadingsSink(CopySink):
    def __init__(self) -> None:
        super().__init__("readings",
                         ("time", "station", "code", "period", "value", "flag", "source"),
                         ("timestamptz", "text", "text", "text", "float8", "text", "text"))

    def add(self, record: Reading | ReadingBatch) -> None:
        """Add the rows of one ``env.readings`` record (one reading or a station's batch)."""
        self.rows.extend([(r.time, r.station, code, r.period, value, r.flags.get(code, "N"),
                           r.source)
                          for r in readings_of(record) for code, value in r.values.items()])

    async def _staged(self, conn: AsyncConnection, stage: str) -> None:
        # readings of stations the registry does not know are stored like the others and
        # counted in the same transaction (storage.unregistered; README "Unregistered sources")
        await note_unregistered(conn, stage)


class CameraHealthSink(CopySink):
    """``camera_health`` rows (``streams.camera_health``): transitions and heartbeats."""

    def __init__(self) -> None:
        super().__init__("camera_health", ("time", "camera", "online", "fps", "detail"),
                         ("timestamptz", "text", "bool", "float8", "text"))

    def add(self, row: HealthRow) -> None:
        self.add_row((row.time, row.camera, row.online, row.fps, row.detail))


def rejected_id(rejected: Rejected) -> str:
    """Natural key of a dead letter: the same rejection re-delivered is stored once."""
    digest = hashlib.sha256()
    for part in (rejected.time.isoformat(), rejected.source, rejected.reason):
        digest.update(part.encode() + b"\0")
    digest.update(rejected.raw)
    return digest.hexdigest()


class RejectedSink(CopySink):
    def __init__(self) -> None:
        super().__init__("rejected", ("id", "time", "source", "reason", "raw", "context"),
                         ("text", "timestamptz", "text", "text", "bytea", "jsonb"))

    def add(self, rejected: Rejected) -> None:
        self.add_row((rejected_id(rejected), rejected.time, rejected.source, rejected.reason,
                      rejected.raw, Jsonb(rejected.context)))


class CluesSink(CopySink):
    """Current state per clue (newest observation wins) plus every state change as an event.

    Each clue arrives routed (``Clue.route``, set once by the clue exit): the row gets its
    site key, primary department, jurisdiction and the zones it touches, and the event
    payload a ``routing`` entry with the whole route. ``router`` routes only a clue that
    arrives without a route (one produced before the clue exit set it).
    """

    def __init__(self, router: Router | None = None) -> None:
        columns = ("clue_id", "modality", "kind", "rule", "subject", "state", "start", "time",
                   "end", "confidence", "location", "metrics", "summary", "detector", "site",
                   "department", "jurisdiction", "zones")
        update = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns[5:])
        super().__init__(
            "clues", columns,
            ("text", "text", "text", "text", "text", "text", "timestamptz", "timestamptz",
             "timestamptz", "float8", "jsonb", "jsonb", "text", "text", "text", "text", "text",
             "jsonb"),
            conflict=f"(clue_id) DO UPDATE SET {update}, updated_at = now()"
                     " WHERE clues.time <= EXCLUDED.time")
        self.router = router
        self.with_evidence: list[Clue] = []
        self.events = CopySink("clue_events", ("time", "clue_id", "kind", "state", "payload"),
                               ("timestamptz", "text", "text", "text", "jsonb"))

    def add(self, clue: Clue) -> None:
        payload = clue.model_dump(mode="json", exclude={"evidence", "route"})
        route = clue.route
        if route is None:
            if self.router is None:
                raise ValueError(f"clue {clue.clue_id} arrived without a route")
            route = self.router.route_clue(clue).to_dict()
        payload["routing"] = route
        juris = route["jurisdiction"]["id"] if route["jurisdiction"] else None
        self.add_row((clue.clue_id, clue.modality, clue.kind, clue.rule, clue.subject, clue.state,
                      clue.start, clue.time, clue.end, clue.confidence,
                      Jsonb(clue.location) if clue.location else None,
                      Jsonb(payload["metrics"]), clue.summary, clue.detector, route["site"],
                      route["department"], juris, Jsonb(route["zones"])))
        self.events.add_row((clue.time, clue.clue_id, clue.kind, clue.state, Jsonb(payload)))
        ready = [item for item in clue.evidence if item.content or item.sha256]
        if ready:  # an item still to be drawn (``pending``) comes again with its bytes
            self.with_evidence.append(clue if len(ready) == len(clue.evidence)
                                      else clue.model_copy(update={"evidence": ready}))

    async def flush(self, pool: AsyncConnectionPool) -> int:
        # a batch may hold several updates of one clue: keep the newest per clue for the upsert
        newest: dict[str, tuple[Any, ...]] = {}
        for row in self.rows:
            if row[0] not in newest or newest[row[0]][7] <= row[7]:
                newest[row[0]] = row
        self.rows = list(newest.values())
        written = await super().flush(pool)
        await self.events.flush(pool)
        # evidence is fixed (hashed, chained, signed) before the batch's offsets are committed;
        # a redelivered clue's items are recognised by id and not appended twice
        while self.with_evidence:
            await fix_clue_evidence(pool, self.with_evidence[0])
            self.with_evidence.pop(0)
        return written


class CasesSink(CopySink):
    """Fused cases (``streams.clues``): one row per case, a newer version replaces an older."""

    COLUMNS = ("case_id", "site", "state", "first_time", "last_time", "modalities", "clue_ids",
               "confidence", "department", "location", "evidence", "summary", "version")

    def __init__(self) -> None:
        update = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in self.COLUMNS[2:])
        super().__init__(
            "cases", self.COLUMNS,
            ("text", "text", "text", "timestamptz", "timestamptz", "text[]", "text[]", "float8",
             "text", "jsonb", "jsonb", "text", "int4"),
            conflict=f"(case_id) DO UPDATE SET {update}, updated_at = now()"
                     " WHERE cases.version <= EXCLUDED.version")

    def add(self, case: dict[str, Any]) -> None:
        """Add a case in the form ``streams.clues.Case.to_row`` gives."""
        self.add_row(tuple(Jsonb(case[c]) if c in ("location", "evidence") and case[c] is not None
                           else case[c] for c in self.COLUMNS))

    async def flush(self, pool: AsyncConnectionPool) -> int:
        newest: dict[str, tuple[Any, ...]] = {}
        for row in self.rows:  # one row per case per statement: ON CONFLICT needs it
            if row[0] not in newest or newest[row[0]][-1] <= row[-1]:
                newest[row[0]] = row
        self.rows = list(newest.values())
        return await super().flush(pool)
