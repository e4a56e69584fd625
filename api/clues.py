"""Monitoring-center endpoints: clues, their evidence, and the live clue stream (SSE).

``GET /clues/stream`` is fed by PostgreSQL LISTEN/NOTIFY: a trigger on ``clues`` numbers
every insert and update (``event_seq``) and notifies ``offsite_clues``. One listener per
process (``ClueFeed``) wakes the open streams; each stream then reads the clues it may see
with ``event_seq`` above the last id it sent. So the event id is the clue's ``event_seq``,
and a client reconnecting with ``Last-Event-ID`` gets what changed since from the table
(each changed clue once, in its current state), then live events. Streams also re-read every
``KEEPALIVE_S`` seconds, so a lost notice delays an event, never loses it.

Every clue answer carries ``title`` (in ``lang``, else Accept-Language, else zh-CN),
``title_key``, ``title_args`` and ``severity`` from ``api/clue_titles.py``;
``GET /clues/counts`` counts what the list would page through, by kind, status, modality
and severity.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response, StreamingResponse

from api.access import check, unrestricted
from api.auth import User, current_user
from api.clue_titles import SEVERITIES, pick_lang, severity, titled
from api.errors import Text, Time, in_range, invalid, storable
from contract.clue import Modality
from contract.settings import get_settings
from storage import access as store
from storage.evidence_store import MediaFolder
from storage.notify import CLUES_CHANNEL, follow

log = logging.getLogger(__name__)
CHANNEL = CLUES_CHANNEL
KEEPALIVE_S = 15.0
router = APIRouter(tags=["clues"])
Lang = Annotated[Literal["zh-CN", "en"] | None,
                 Query(description="language of ``title``; default: Accept-Language, zh-CN")]


class ClueFeed:
    """One LISTEN connection per process; wakes every subscribed stream on each notice."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.subscribers: set[asyncio.Event] = set()
        self._task: asyncio.Task | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="clue-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self.subscribers.add(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        self.subscribers.discard(event)

    async def _run(self) -> None:
        def notice(payload: str | None) -> None:
            if payload is None:  # listening (again): catch up on anything missed meanwhile
                self.listening.set()
            self._wake()

        # database gone: the streams keep polling meanwhile
        await follow(self.url, CHANNEL, notice, name="clue feed",
                     on_lost=self.listening.clear)

    def _wake(self) -> None:
        for event in self.subscribers:
            event.set()


def _encode_cursor(row: dict) -> str:
    raw = json.dumps([row["time"].isoformat(), row["clue_id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        time, clue_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return in_range(datetime.fromisoformat(time)), storable(("query", "cursor"), clue_id)
    except Exception as exc:
        raise invalid(("query", "cursor"), "bad cursor", cursor) from exc


def _parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        minx, miny, maxx, maxy = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise invalid(("query", "bbox"), "bbox is minlon,minlat,maxlon,maxlat", text) from exc
    return minx, miny, maxx, maxy


@router.get("/clues")
async def list_clues(
    request: Request,
    kind: Text | None = None,
    state: Text | None = Query(None, alias="status", description="open, closed, ..."),
    modality: Modality | None = None,
    since: Time | None = Query(None, description="clue time >= since"),
    until: Time | None = Query(None, description="clue time < until"),
    bbox: str | None = Query(None, description="minlon,minlat,maxlon,maxlat"),
    zone: Text | None = None,
    department: Text | None = Query(None, description="department the clue is routed to"),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    lang: Lang = None,
    accept_language: str | None = Header(None, include_in_schema=False),
    user: User = Depends(current_user),
) -> dict:
    """Clues the caller may see, newest first; page on with ``next_cursor``."""
    rows = await store.clues(
        request.app.state.pool, dept=user.department, unrestricted=unrestricted(user, "clues"),
        kind=kind, state=state, modality=modality, since=since, until=until,
        bbox=_parse_bbox(bbox) if bbox else None, zone=zone, department=department,
        after=_decode_cursor(cursor) if cursor else None, limit=limit)
    language = pick_lang(lang, accept_language)
    return {"items": [titled(r, language) for r in rows],
            "next_cursor": _encode_cursor(rows[-1]) if len(rows) == limit else None}


@router.get("/clues/counts")
async def count_clues(
    request: Request,
    kind: Text | None = None,
    state: Text | None = Query(None, alias="status", description="open, closed, ..."),
    modality: Modality | None = None,
    since: Time | None = Query(None, description="clue time >= since"),
    until: Time | None = Query(None, description="clue time < until"),
    zone: Text | None = None,
    department: Text | None = Query(None, description="department the clue is routed to"),
    user: User = Depends(current_user),
) -> dict:
    """How many clues ``GET /clues`` pages through with the same filters: in all and by
    kind, status, modality and severity."""
    groups = await store.clue_groups(
        request.app.state.pool, dept=user.department, unrestricted=unrestricted(user, "clues"),
        kind=kind, state=state, modality=modality, since=since, until=until, zone=zone,
        department=department)
    out: dict[str, dict[str, int]] = {"by_kind": {}, "by_status": {}, "by_modality": {},
                                      "by_severity": dict.fromkeys(SEVERITIES, 0)}
    for g in groups:
        area = 10 ** g["area_log10"] if g["area_log10"] is not None else None
        sev = severity(g["kind"], g["ratio"], area)
        for key, value in (("by_kind", g["kind"]), ("by_status", g["state"]),
                           ("by_modality", g["modality"]), ("by_severity", sev)):
            out[key][value] = out[key].get(value, 0) + g["n"]
    return {"total": sum(g["n"] for g in groups), **out}


@router.get("/clues/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "Server-Sent Events: event `clue`, id event_seq"}})
async def stream_clues(
    request: Request,
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    since_event: int | None = Query(None, alias="last_event_id",
                                    description="as the Last-Event-ID header"),
    lang: Lang = None,
    accept_language: str | None = Header(None, include_in_schema=False),
    user: User = Depends(current_user),
) -> StreamingResponse:
    """Live clue changes the caller may see; resumes after ``Last-Event-ID``."""
    pool = request.app.state.pool
    feed: ClueFeed = request.app.state.clue_feed
    if last_event_id is not None:
        try:
            since_event = int(last_event_id)
        except ValueError as exc:
            raise invalid(("header", "Last-Event-ID"), "Last-Event-ID must be an event id",
                          last_event_id) from exc
    start = since_event if since_event is not None else await store.last_event_seq(pool)
    free = unrestricted(user, "stream")
    language = pick_lang(lang, accept_language)

    async def events() -> AsyncIterator[str]:
        last = start
        wake = feed.subscribe()
        try:
            yield f"retry: 2000\n: stream from event {last}\n\n"
            while True:
                wake.clear()
                rows = await store.clues_since(pool, last, dept=user.department,
                                               unrestricted=free)
                for row in rows:
                    last = row["event_seq"]
                    data = json.dumps(jsonable_encoder(titled(row, language)),
                                      separators=(",", ":"))
                    yield f"id: {last}\nevent: clue\ndata: {data}\n\n"
                if len(rows) == 500:
                    continue
                try:
                    await asyncio.wait_for(wake.wait(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
        finally:
            feed.unsubscribe(wake)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/clues/{clue_id:path}")  # ids hold "/" (their rule): a path parameter
async def get_clue(clue_id: Text, request: Request, lang: Lang = None,
                   accept_language: str | None = Header(None, include_in_schema=False),
                   user: User = Depends(current_user)) -> dict:
    """One clue; with its evidence metadata when the caller may see evidence."""
    pool = request.app.state.pool
    row = await store.clue(pool, clue_id)
    if row is None:
        raise HTTPException(404, "not found")
    row = titled(row, pick_lang(lang, accept_language))
    await check(request, user, "clues", row["resource_kind"], row["resource_id"])
    try:
        ok = await check(request, user, "evidence", row["resource_kind"], row["resource_id"])
    except HTTPException:
        return {**row, "evidence": None, "evidence_access": False}
    items = await store.evidence_of(pool, clue_id)
    await store.audit(pool, user=user.as_dict(), action="evidence.list",
                      resource_kind=row["resource_kind"], resource_id=row["resource_id"],
                      owner_dept=ok["owner_dept"], clue_id=clue_id, grant_id=ok["grant_id"],
                      detail={"evidence_ids": [e["id"] for e in items]})
    return {**row, "evidence": items, "evidence_access": True}


_SOURCE_KIND = {"station": "station", "camera": "camera", "tile": "scene_collection"}


async def _evidence_access(request: Request, user: User, evidence_id: str,
                           with_content: bool) -> tuple[dict, dict, str, str]:
    pool = request.app.state.pool
    ev = await store.evidence(pool, evidence_id, with_content)
    if ev is None:
        raise HTTPException(404, "not found")
    clue = await store.clue(pool, ev["clue_id"])
    if clue is not None:
        kind, rid = clue["resource_kind"], clue["resource_id"]
    else:
        prefix, _, rid = ev["source"].partition(":")
        kind = _SOURCE_KIND.get(prefix, prefix)
    ok = await check(request, user, "evidence", kind, rid)
    return ev, ok, kind, rid


@router.get("/evidence/{evidence_id}")
async def get_evidence(evidence_id: Text, request: Request,
                       user: User = Depends(current_user)) -> dict:
    ev, ok, kind, rid = await _evidence_access(request, user, evidence_id, False)
    await store.audit(request.app.state.pool, user=user.as_dict(), action="evidence.metadata",
                      resource_kind=kind, resource_id=rid, owner_dept=ok["owner_dept"],
                      clue_id=ev["clue_id"], evidence_id=evidence_id, grant_id=ok["grant_id"])
    return ev


@router.get("/evidence/{evidence_id}/content", response_class=Response,
            responses={200: {"content": {"*/*": {"schema": {"type": "string",
                                                             "format": "binary"}}},
                             "description": "the media, of its own media type"}})
async def evidence_content(evidence_id: Text, request: Request,
                           user: User = Depends(current_user)) -> Response:
    """The evidence bytes (from the row or the evidence folder), audited."""
    ev, ok, kind, rid = await _evidence_access(request, user, evidence_id, True)
    content = ev.get("content")
    if content is None and ev.get("uri"):
        path = MediaFolder(get_settings().evidence_folder).resolve(ev["uri"])
        if path is not None:
            with contextlib.suppress(OSError):
                content = await asyncio.to_thread(path.read_bytes)
    await store.audit(request.app.state.pool, user=user.as_dict(), action="evidence.content",
                      resource_kind=kind, resource_id=rid, owner_dept=ok["owner_dept"],
                      clue_id=ev["clue_id"], evidence_id=evidence_id, grant_id=ok["grant_id"],
                      detail={"found": content is not None})
    if content is None:
        raise HTTPException(404, "evidence media is not stored here")
    return Response(bytes(content), media_type=ev["media_type"],
                    headers={"X-Content-SHA256": ev["sha256"],
                             "Content-Disposition": f'inline; filename="{_safe(ev["name"])}"'})


def _safe(name: str) -> str:
    return "".join(c for c in name if c.isascii() and c.isprintable() and c not in '"\\')
