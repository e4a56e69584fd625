"""Department access: the rules, and the request / grant / audit endpoints.

Every camera, station and scene collection is owned by a department. Other departments ask
the owner for access (``POST /access-requests``: resources, purpose, permissions, period);
a ``department_user`` (or ``admin``) of the owner approves or denies; approval makes a grant
that is live from ``valid_from`` until ``valid_until`` unless revoked.

Who sees what (decided here, enforced in SQL by ``storage.access.visible``):

============================  ==========  ================================================
what                          permission  who besides owner / live grant with permission
============================  ==========  ================================================
clue list and clue detail     history     admin, center_operator
clue stream (SSE)             live        admin, center_operator
camera / station health       live        admin, center_operator
readings of a station         history     admin
evidence metadata and media   evidence    admin
task's clue details, accept,  history     admin, center_operator (``api/task_access.py``)
report
task referral and its bundle  evidence    admin
============================  ==========  ================================================

``inspector`` and ``department_user`` see only what their department owns or was granted.
A clue's resource is its station (env), camera (video) or scene collection (satellite:
``metrics.collection``, else the subject); a resource with no owner row is seen only by the
roles in the right-hand column. Every evidence access (metadata or media) is written to the
audit log with the grant it used (none for owners and admins); ``GET /audit`` shows admins
everything and a department's ``department_user`` the accesses to its own resources.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from api.auth import User, current_user
from api.errors import Text, Time, errors, invalid
from storage import access as store

Perm = Literal["live", "history", "evidence"]
Kind = Literal["station", "camera", "scene_collection"]
What = Literal["clues", "stream", "health", "readings", "evidence"]
PERMISSION: dict[str, Perm] = {"clues": "history", "stream": "live", "health": "live",
                               "readings": "history", "evidence": "evidence"}
_CENTER_SEES = {"clues", "stream", "health"}


def unrestricted(user: User, what: What) -> bool:
    """Whether the role alone lets the user see ``what`` of every resource."""
    return user.is_admin or (user.role == "center_operator" and what in _CENTER_SEES)


async def access_of(request: Request, user: User, what: What, kind: str,
                    resource_id: str) -> dict:
    """The one rule, answered instead of enforced: who owns the resource, and how (if at
    all) the caller may see ``what`` of it.

    Returns ``{"owner_dept", "grant_id", "access"}`` with ``access`` one of ``role``
    (admin, center operator), ``owner`` (the caller's department owns it), ``grant`` (a
    live grant with the permission ``what`` needs) or ``none``.
    """
    got = await store.access_to(request.app.state.pool, kind, resource_id, user.department,
                                PERMISSION[what])
    if unrestricted(user, what):
        return {**got, "grant_id": None, "access": "role"}
    if got["owner_dept"] is not None and got["owner_dept"] == user.department:
        return {**got, "grant_id": None, "access": "owner"}
    if got["grant_id"] is not None:
        return {**got, "access": "grant"}
    return {**got, "access": "none"}


async def check(request: Request, user: User, what: What, kind: str,
                resource_id: str) -> dict:
    """Allow or raise 404 (never tell a caller what exists that it may not see).

    Returns ``{"owner_dept", "grant_id"}``: the grant that allowed it, None for owner/role.
    """
    got = await access_of(request, user, what, kind, resource_id)
    if got["access"] == "none":
        raise HTTPException(404, "not found")
    return {"owner_dept": got["owner_dept"], "grant_id": got["grant_id"]}


def can_manage(user: User, owner_dept: str | None) -> bool:
    """Approve, deny, revoke and audit for a department's resources."""
    return user.is_admin or (user.role == "department_user" and owner_dept == user.department)


router = APIRouter(tags=["access"])


class ResourceRef(BaseModel):
    kind: Kind
    id: Text


class AccessRequestIn(BaseModel):
    resources: list[ResourceRef] = Field(min_length=1)
    purpose: Text = Field(min_length=1)
    permissions: list[Perm] = Field(min_length=1)
    valid_from: Time | None = Field(default=None, description="default: now")
    valid_until: Time


class Decision(BaseModel):
    note: Text = ""


@router.post("/access-requests", status_code=201, responses=errors(400))
async def create_requests(body: AccessRequestIn, request: Request,
                          user: User = Depends(current_user)) -> list[dict]:
    """Ask the owners for access: one request per resource, each to that resource's owner."""
    pool = request.app.state.pool
    start = body.valid_from or datetime.now(UTC)
    if body.valid_until <= start:
        raise invalid(("body", "valid_until"), "valid_until must be after valid_from",
                      body.valid_until)
    owners = []
    for res in body.resources:
        owner = await store.resource_owner(pool, res.kind, res.id)
        if owner is None:
            raise HTTPException(404, f"no owned {res.kind} {res.id!r}")
        if owner == user.department:
            raise HTTPException(400, f"{res.kind} {res.id!r} is already your department's")
        owners.append(owner)
    return [await store.create_request(pool, user=user.as_dict(), kind=res.kind,
                                       resource_id=res.id, owner_dept=owner,
                                       purpose=body.purpose,
                                       permissions=sorted(set(body.permissions)),
                                       valid_from=start, valid_until=body.valid_until)
            for res, owner in zip(body.resources, owners, strict=True)]


@router.get("/access-requests")
async def list_requests(request: Request, state: Text | None = None,
                        user: User = Depends(current_user)) -> list[dict]:
    """Requests your department made or received (admins: all)."""
    return await store.requests_for(request.app.state.pool,
                                    None if user.is_admin else user.department, state)


async def _decide(request: Request, request_id: int, user: User, approve: bool,
                  note: str) -> dict:
    pool = request.app.state.pool
    req = await store.get_request(pool, request_id)
    if req is None or not (user.is_admin or user.department in (req["owner_dept"],
                                                                req["requester_dept"])):
        raise HTTPException(404, "no such request")
    if not can_manage(user, req["owner_dept"]):
        raise HTTPException(403, "only the owner department decides")
    done = await store.decide(pool, request_id, user=user.id, approve=approve, note=note)
    if done is None:
        raise HTTPException(409, f"request is {req['state']}, not pending")
    return done


@router.post("/access-requests/{request_id}/approve", responses=errors(400, 409))
async def approve(request_id: int, request: Request, body: Decision | None = None,
                  user: User = Depends(current_user)) -> dict:
    return await _decide(request, request_id, user, True, body.note if body else "")


@router.post("/access-requests/{request_id}/deny", responses=errors(400, 409))
async def deny(request_id: int, request: Request, body: Decision | None = None,
               user: User = Depends(current_user)) -> dict:
    return await _decide(request, request_id, user, False, body.note if body else "")


@router.get("/grants")
async def list_grants(request: Request, user: User = Depends(current_user)) -> list[dict]:
    """Grants your department holds or gave (admins: all), with status live / expired / ..."""
    return await store.grants_for(request.app.state.pool,
                                  None if user.is_admin else user.department)


@router.post("/grants/{grant_id}/revoke", responses=errors(409))
async def revoke(grant_id: int, request: Request, user: User = Depends(current_user)) -> dict:
    pool = request.app.state.pool
    grant = await store.get_grant(pool, grant_id)
    if grant is None or not (user.is_admin or user.department in (grant["owner_dept"],
                                                                  grant["grantee_dept"])):
        raise HTTPException(404, "no such grant")
    if not can_manage(user, grant["owner_dept"]):
        raise HTTPException(403, "only the owner department revokes")
    if not await store.revoke_grant(pool, grant_id, user.id):
        raise HTTPException(409, "grant already revoked")
    got = await store.get_grant(pool, grant_id)
    assert got is not None
    return got


@router.get("/audit")
async def audit(request: Request, since: Time | None = None,
                limit: int = Query(200, ge=1, le=5_000),
                user: User = Depends(current_user)) -> list[dict]:
    """Evidence and media accesses: admins see all, a department's own resources otherwise."""
    if not user.is_admin and user.role != "department_user":
        raise HTTPException(403, "audit is for admins and owner departments")
    return await store.audit_entries(request.app.state.pool,
                                     owner_dept=None if user.is_admin else user.department,
                                     since=since, limit=limit)
