"""The evidence store: fixes evidence in PostgreSQL and checks it again later.

Each item is content-addressed (sha256), timestamped (its data time and the time it was
fixed), attributed (source, detector, detector version and parameters), appended to its
source's hash chain and signed with the state folder's Ed25519 key (see
``storage.evidence_chain`` for why each piece is there).

Appending, one transaction per source: ``pg_advisory_xact_lock`` on the source, read the
chain head, skip items whose id already exists (re-delivered clues are fixed once), seal,
insert. The bytes live either in the row (``content bytea``, media ``database``) or in a
content-addressed folder (``<dir>/ab/cdef...``, media ``folder``; the row's ``uri`` then
names the file relative to the folder), per ``settings.evidence_media``.

Reading back (``load_records``, ``verify_database``) is synchronous: it serves the
``offsite evidence verify`` and ``offsite case export`` commands.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from contract.clue import Clue
from contract.records import Evidence
from storage.evidence_chain import (
    ChainHead,
    EvidenceRecord,
    EvidenceSigner,
    Issue,
    VerifyReport,
    item_id,
    seal_evidence,
    sha256_hex,
    verify_records,
)
from storage.evidence_trust import HeadsFile

Media = Literal["database", "folder"]
FOLDER_URI = "folder:"  # uri of a file in the evidence folder: folder:ab/cdef...
EXTERNAL_URI = "sha256:"  # by-reference item whose bytes were never given to the store
_RECORD_COLUMNS = ("id", "source", "seq", "time", "fixed_at", "clue_id", "sha256", "media_type",
                   "name", "detector", "detector_version", "params", "prev_hash", "key_id",
                   "record_hash", "signature", "uri", "content")
_SHA256 = re.compile(r"[0-9a-f]{64}")
log = logging.getLogger(__name__)
_SOURCE_PREFIX = {"env": "station", "video": "camera", "satellite": "tile", "power": "entity"}


def clue_source(clue: Clue) -> str:
    """The chain a clue's evidence joins: its station, camera or tile."""
    return f"{_SOURCE_PREFIX.get(clue.modality, clue.modality)}:{clue.subject}"


def clue_evidence(clue: Clue) -> list[Evidence]:
    """A clue's evidence items as records to fix, attributed to the clue's detector."""
    return [Evidence(clue_id=clue.clue_id, source=clue_source(clue), time=clue.time, item=item,
                     detector=clue.detector, detector_version=clue.detector_version,
                     params=clue.params) for item in clue.evidence]


def source_lock_key(source: str) -> int:
    """A stable signed 64-bit advisory lock key per chain."""
    digest = hashlib.sha256(b"offsite-evidence-chain:" + source.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class MediaFolder:
    """Content-addressed files: ``<root>/ab/cdef...`` holds the bytes whose sha256 is abcdef..."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:]

    @staticmethod
    def uri(sha256: str) -> str:
        return f"{FOLDER_URI}{sha256[:2]}/{sha256[2:]}"

    def resolve(self, uri: str) -> Path | None:
        if not uri.startswith(FOLDER_URI):
            return None
        rel = Path(uri.removeprefix(FOLDER_URI))
        if rel.is_absolute() or ".." in rel.parts:
            return None
        return self.root / rel

    def read(self, sha256: str) -> bytes | None:
        try:
            return self.path(sha256).read_bytes()
        except OSError:
            return None

    def write(self, content: bytes) -> str:
        """Store bytes once (atomic rename); rewrite a file whose bytes no longer match."""
        digest = sha256_hex(content)
        path = self.path(digest)
        if path.exists() and sha256_hex(path.read_bytes()) == digest:
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest


class EvidenceStore:
    """Fixes evidence into the ``evidence`` table; one per process, shared by agents."""

    def __init__(self, pool: AsyncConnectionPool, signer: EvidenceSigner, *,
                 media: Media = "database", folder: str | Path | None = None,
                 heads: HeadsFile | None = None) -> None:
        if media == "folder" and folder is None:
            raise ValueError("folder media needs an evidence folder")
        self.pool = pool
        self.signer = signer
        self.media = media
        self.folder = MediaFolder(folder) if folder is not None else None
        self.heads = heads
        self._key_registered = False

    @classmethod
    async def open(cls, pool: AsyncConnectionPool, settings: Any = None) -> EvidenceStore:
        """The store for ``settings``: key made at first start, public key registered."""
        if settings is None:
            from contract.settings import get_settings

            settings = get_settings()
        signer = await asyncio.to_thread(EvidenceSigner.load_or_create, settings.state_dir)
        store = cls(pool, signer, media=settings.evidence_media, folder=settings.evidence_folder,
                    heads=HeadsFile(settings.state_dir))
        await store.register_key()
        return store

    async def register_key(self) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO evidence_keys (key_id, public_key_hex, public_key_pem)"
                " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (self.signer.key_id, self.signer.public_hex(), self.signer.public_pem()))
        self._key_registered = True

    async def add(self, *items: Clue | Evidence | Iterable[Clue | Evidence]) -> list[str]:
        """Fix clues' evidence and evidence records; returns every item's id, in order.

        Items already fixed (same source, clue, name and bytes) are skipped, not chained
        again, and their ids are returned all the same. An item with neither bytes nor a
        sha256 cannot be fixed: it is logged and left out (a poison message must not stop
        the stream).
        """
        flat: list[Evidence] = []
        for item in items:
            if isinstance(item, Clue):
                flat.extend(clue_evidence(item))
            elif isinstance(item, Evidence):
                flat.append(item)
            else:
                for sub in item:
                    flat.extend(clue_evidence(sub) if isinstance(sub, Clue) else [sub])
        if not flat:
            return []
        if not self._key_registered:
            await self.register_key()
        ids: list[str] = []
        by_source: dict[str, list[tuple[str, Evidence]]] = {}
        for ev in flat:
            ev_id = _id_of(ev)
            if ev_id is not None:
                ids.append(ev_id)
                by_source.setdefault(ev.source, []).append((ev_id, ev))
        heads = []
        for source in sorted(by_source):  # a fixed order: no lock-order deadlocks
            head = await self._append(source, by_source[source])
            if head is not None:
                heads.append(head)
        if heads and self.heads is not None:  # committed: the state folder learns the heads
            await asyncio.to_thread(self.heads.advance, heads)
        return ids

    async def _append(self, source: str, batch: list[tuple[str, Evidence]]) -> ChainHead | None:
        """Chain and insert one source's new items; the new head, None if nothing was new."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (source_lock_key(source),))
            cur = await conn.execute(
                "SELECT seq, record_hash FROM evidence WHERE source = %s"
                " ORDER BY seq DESC LIMIT 1", (source,))
            row = await cur.fetchone()
            head = ChainHead(source, row[0], row[1]) if row else ChainHead(source)
            cur = await conn.execute("SELECT id FROM evidence WHERE id = ANY(%s)",
                                     ([ev_id for ev_id, _ in batch],))
            done = {r[0] for r in await cur.fetchall()}
            rows = []
            for ev_id, ev in batch:
                if ev_id in done:
                    continue
                done.add(ev_id)
                record = await self._seal(ev, head)
                head = ChainHead.of(record)
                rows.append(record)
            if not rows:
                return None
            cols = ", ".join(f'"{c}"' for c in _RECORD_COLUMNS)
            marks = ", ".join(["%s"] * len(_RECORD_COLUMNS))
            async with conn.cursor() as ins:
                await ins.executemany(
                    f"INSERT INTO evidence ({cols}) VALUES ({marks})",
                    [tuple(Jsonb(v) if c == "params" else v
                           for c, v in ((c, getattr(r, c)) for c in _RECORD_COLUMNS))
                     for r in rows])
        return head

    async def _seal(self, ev: Evidence, head: ChainHead) -> EvidenceRecord:
        content = ev.item.content
        if not content:  # by reference: the bytes are held elsewhere
            digest = (ev.item.sha256 or "").lower()
            uri = EXTERNAL_URI + digest
            if self.folder is not None and self.folder.path(digest).exists():
                uri = MediaFolder.uri(digest)
            return seal_evidence(ev, head, self.signer, uri=uri)
        if self.media == "folder":
            assert self.folder is not None
            digest = await asyncio.to_thread(self.folder.write, content)
            record = seal_evidence(ev, head, self.signer, uri=MediaFolder.uri(digest))
            return replace(record, content=None)
        return seal_evidence(ev, head, self.signer)


def _id_of(ev: Evidence) -> str | None:
    digest = sha256_hex(ev.item.content) if ev.item.content else (ev.item.sha256 or "").lower()
    if not _SHA256.fullmatch(digest):
        log.warning("evidence %r of %s has neither bytes nor a sha256: not fixed",
                    ev.item.name, ev.clue_id)
        return None
    return item_id(ev.source, ev.clue_id, ev.item.name, digest)


_stores: weakref.WeakKeyDictionary[AsyncConnectionPool, EvidenceStore] = \
    weakref.WeakKeyDictionary()


async def fix_clue_evidence(pool: AsyncConnectionPool, clue: Clue,
                            settings: Any = None) -> list[str]:
    """Fix one clue's evidence with the pool's store (opened on first use); returns ids.

    For the clue sink: call it for each clue that carries evidence, before committing the
    offsets; re-delivered clues are skipped by id.
    """
    if not clue.evidence:
        return []
    store = _stores.get(pool)
    if store is None:  # two first calls at once both open one: harmless, one is kept
        store = _stores.setdefault(pool, await EvidenceStore.open(pool, settings))
    return await store.add(clue)


# ---- reading back -------------------------------------------------------------------------


def record_from_row(row: dict[str, Any]) -> EvidenceRecord:
    values = {c: row.get(c) for c in _RECORD_COLUMNS}
    values["params"] = values["params"] or {}
    values["seq"] = int(values["seq"])
    content = values["content"]
    values["content"] = bytes(content) if content is not None else None
    return EvidenceRecord(**values)


def _select(where: str = "TRUE") -> str:
    cols = ", ".join(f'"{c}"' for c in _RECORD_COLUMNS)
    return f"SELECT {cols} FROM evidence WHERE {where} ORDER BY source, seq, fixed_at, id"


def load_records(conn: psycopg.Connection, where: str = "TRUE",
                 params: Any = None) -> list[EvidenceRecord]:
    cur = conn.cursor(row_factory=dict_row)
    cur.execute(_select(where), params)
    return [record_from_row(r) for r in cur.fetchall()]


def fetcher(folder: MediaFolder | None, conn: psycopg.Connection | None = None):
    """``fetch(sha256)`` for records without inline content: the folder, then another row."""

    def fetch(digest: str) -> bytes | None:
        if folder is not None:
            data = folder.read(digest)
            if data is not None:
                return data
        if conn is not None:
            row = conn.execute("SELECT content FROM evidence WHERE sha256 = %s"
                               " AND content IS NOT NULL LIMIT 1", (digest,)).fetchone()
            if row is not None:
                return bytes(row[0])
        return None

    return fetch


def _content_issue(rec: EvidenceRecord, content: bytes | None) -> Issue | None:
    if content is None:
        return Issue(rec.id, rec.source, rec.seq, "content_missing",
                     f"no content for sha256 {rec.sha256}"
                     + (f" (uri {rec.uri})" if rec.uri else ""))
    got = sha256_hex(content)
    if got != rec.sha256:
        return Issue(rec.id, rec.source, rec.seq, "content_modified",
                     f"content hashes to {got}, record says {rec.sha256}")
    return None


def verify_database(database_url: str, *, trusted_keys: Iterable[Any],
                    folder: str | Path | None = None, since: datetime | None = None,
                    expected_heads: dict[str, ChainHead] | None = None) -> VerifyReport:
    """Re-hash every item's bytes and check every chain and signature in the database.

    Rows are streamed and their bytes hashed one at a time, so memory stays flat however
    large the store. ``since`` checks the records fixed at or after that moment, each chain
    anchored on its record just before. ``trusted_keys`` are the only keys accepted (see
    ``storage.evidence_trust``): never the ``evidence_keys`` table, which an intruder in the
    database could rewrite along with the records. ``expected_heads`` (the writers' heads
    file, an earlier ``--save-heads``) catch a chain whose newest records were deleted.
    """
    media = MediaFolder(folder) if folder is not None else None
    content_issues: list[Issue] = []
    with psycopg.connect(database_url) as conn:
        keys = list(trusted_keys)
        fetch_other = fetcher(media, conn)
        anchors: dict[str, ChainHead] = {}
        where, params = "TRUE", None
        if since is not None:
            # per chain: from the first record fixed since then; the one before is the anchor
            starts = conn.execute(
                "SELECT source, min(seq) FROM evidence WHERE fixed_at >= %s GROUP BY source",
                (since,)).fetchall()
            for source, first in starts:
                row = conn.execute(
                    "SELECT seq, record_hash FROM evidence WHERE source = %s AND seq < %s"
                    " ORDER BY seq DESC LIMIT 1", (source, first)).fetchone()
                if row is not None:
                    anchors[source] = ChainHead(source, int(row[0]), row[1])
            where = ("(source, seq) IN (SELECT e.source, e.seq FROM evidence e JOIN"
                     " (SELECT source, min(seq) AS lo FROM evidence WHERE fixed_at >= %s"
                     " GROUP BY source) s ON e.source = s.source AND e.seq >= s.lo)")
            params = (since,)
            if expected_heads:
                expected_heads = {s: h for s, h in expected_heads.items()
                                  if s in anchors or s in dict(starts)}

        def stream() -> Iterator[EvidenceRecord]:
            with conn.cursor(name="offsite_verify", row_factory=dict_row) as cur:
                cur.itersize = 200
                cur.execute(_select(where), params)
                for row in cur:
                    rec = record_from_row(row)
                    content = rec.content
                    if content is None:
                        path = media.resolve(rec.uri) if media and rec.uri else None
                        if path is not None:
                            try:
                                content = path.read_bytes()
                            except OSError:
                                content = None
                        else:
                            content = fetch_other(rec.sha256)
                    issue = _content_issue(rec, content)
                    if issue is not None:
                        content_issues.append(issue)
                    yield replace(rec, content=None)  # checked: keep memory flat

        with conn.transaction():
            report = verify_records(stream(), None, keys, anchors=anchors,
                                    expected_heads=expected_heads, require_content=False)
    report.issues.extend(content_issues)
    report.issues.sort(key=lambda i: (i.source, i.seq if i.seq is not None else -1))
    return report
