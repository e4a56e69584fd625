"""Work statistics per department and period (``GET /stats``).

``admin`` and ``center_operator`` see any department (or all, with ``department`` left
out); everyone else only their own department (another one answers 404). The figures and
how each is counted are in ``storage.tasks.stats``; ``coverage`` (clues acted on in time,
confirmed rate per clue kind, draws done against planned, high-risk entities never
inspected) in ``oversight.coverage``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from api.auth import User, current_user
from api.errors import Text, Time, invalid
from contract.settings import get_settings
from storage import coverage
from storage import tasks as store

router = APIRouter(tags=["tasks"])


@router.get("/stats")
async def stats(request: Request,
                department: Text | None = Query(None, description="default: your own"),
                since: Time | None = Query(None, description="default: until - 30 days"),
                until: Time | None = Query(None, description="default: now"),
                user: User = Depends(current_user)) -> dict:
    """Readings received, clues raised, tasks assigned / accepted / closed, median times to
    accept and to close, the false-positive rate per clue kind, and enforcement coverage."""
    if user.role not in ("admin", "center_operator"):
        if department not in (None, user.department):
            raise HTTPException(404, "not found")
        department = user.department
    until = until or datetime.now(UTC)
    since = since or until - timedelta(days=30)
    for name, value in (("since", since), ("until", until)):
        if value.tzinfo is None:
            raise invalid(("query", name), f"{name} needs a time zone", value)
    if since >= until:
        raise invalid(("query", "since"), "since must be before until", since)
    pool = request.app.state.pool
    out = await store.stats(pool, department, since, until)
    out["coverage"] = await coverage.coverage(pool, department, since, until, datetime.now(UTC),
                                              get_settings().local_utc_offset_hours)
    return out
