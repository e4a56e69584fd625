"""Risk per regulated entity: ``GET /risk`` (list, filters, sort, paging) and
``GET /risk/{entity}`` (score, level, contributions with links to their clues, history).

The score and its formula: ``oversight/risk.py`` and the README ("Risk per regulated
entity"); kept current by ``api/risk_feed.py`` (started by this router's lifespan).

Who sees an entity mirrors the clue rules (``api/access.py``): admins and the monitoring
center every entity; any other role the entities of its department: owned by it, watched by
its stations or cameras, or sited in zones it owns or in its county
(``storage/risk_read.py``). Others get a 404, as for a clue. A contribution names its clue
and links to ``/clues/{id}``, where the clue rules decide again what the caller may read.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from api import risk_feed
from api.access import unrestricted
from api.auth import User, current_user
from api.errors import Text, errors, invalid
from storage import risk_read as store

router = APIRouter(tags=["risk"], lifespan=risk_feed.lifespan)
CreditClass = Literal["A", "B", "C", "D"]
Level = Literal["low", "medium", "high"]


def _link(contribution: dict[str, Any]) -> dict[str, Any]:
    return {**contribution, "link": "/clues/" + quote(contribution["clue_id"], safe="/:")}


def _item(row: dict[str, Any], top: int | None = None) -> dict[str, Any]:
    contributions = [_link(c) for c in row["contributions"]]
    return {"entity": row["entity"], "name": row["name"], "credit_class": row["credit_class"],
            "owner_dept": row["owner_dept"], "owner_dept_name": row["owner_dept_name"],
            "licence": row["licence"], "zones": list(row["zones"] or []),
            "score": round(float(row["score"]), 3), "level": row["level"],
            "clues": row["clues"], "computed_at": row["computed_at"],
            "contributions": contributions[:top] if top is not None else contributions,
            "location": row["location"]}


def _cursor(row: dict[str, Any], sort: str) -> str:
    key = float(row["score"]) if sort == "score" else row["name"]
    return base64.urlsafe_b64encode(json.dumps([sort, key, row["entity"]]).encode()).decode()


def _after(text: str, sort: str) -> tuple[Any, str]:
    try:
        was, key, entity = json.loads(base64.urlsafe_b64decode(text.encode()))
        ok = (was == sort and isinstance(entity, str) and "\x00" not in entity
              and (isinstance(key, int | float) if sort == "score"
                   else isinstance(key, str) and "\x00" not in key))
    except Exception as exc:
        raise invalid(("query", "after"), "bad cursor", text) from exc
    if not ok:
        raise invalid(("query", "after"), "cursor of another sort, or broken", text)
    return key, entity


@router.get("/risk")
async def list_risk(
    request: Request,
    department: Text | None = Query(None, description="owner department of the entity"),
    credit_class: CreditClass | None = None,
    level: Level | None = None,
    sort: Literal["score", "name"] = Query("score", description="score: highest first"),
    limit: int = Query(100, ge=1, le=1000),
    after: str | None = Query(None, description="next_cursor of the previous page"),
    user: User = Depends(current_user),
) -> dict:
    """Entities the caller may see with their risk, highest score first (or by name); each
    with its top three contributions and where to draw it (``location``)."""
    rows = await store.entities(
        request.app.state.pool, dept=user.department, unrestricted=unrestricted(user, "clues"),
        department=department, credit_class=credit_class, level=level, sort=sort,
        after=_after(after, sort) if after else None, limit=limit)
    return {"items": [_item(r, 3) for r in rows],
            "next_cursor": _cursor(rows[-1], sort) if len(rows) == limit else None}


@router.get("/risk/{entity}", responses=errors(404))
async def get_risk(entity: Text, request: Request,
                   history: int = Query(100, ge=0, le=5000, description="snapshots, newest first"),
                   user: User = Depends(current_user)) -> dict:
    """One entity's score, level, contributions (the largest terms, each linking to its
    clue) and score history."""
    pool = request.app.state.pool
    row = await store.entity(pool, entity, dept=user.department,
                             unrestricted=unrestricted(user, "clues"))
    if row is None:
        raise HTTPException(404, "not found")
    return {**_item(row), "status": row["status"],
            "history": await store.history(pool, entity, history) if history else []}
