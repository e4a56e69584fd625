"""Inspector tasks: inbox, assignment, acceptance, field report, referral.

A task is opened by the database for every routed clue (``migrations/005_tasks.sql``) and
assigned in turn to an inspector of the clue's department; every change is pushed to the
inspector's terminal over MQTT (``api/task_push.py``, started by this router's lifespan).

Who may do what (anything not visible answers 404, as elsewhere):

* see (``GET /tasks``, ``GET /tasks/{id}``): the assignee or co-assignee (the second
  inspector of a drawn inspection); the department's ``department_user``; ``admin`` and
  ``center_operator`` every task;
* assign by hand: the department's ``department_user``, ``admin`` (to an inspector of the
  task's department);
* accept, report: the assignee or co-assignee only;
* refer (case bundle) and download it: the department's ``department_user``, ``admin``,
  the assignee or co-assignee; only for a closed clue task whose result is ``confirmed``.

On top of these roles, access follows ownership (``api/task_access.py``): the clue's
details, accepting, reporting, referring and the bundle need the resource owner's data or
a live grant, and are audited; without them the task answers ``access: "none"`` with the
owner and ``POST /tasks/{id}/access-request`` asks the owner with one call.

``POST /tasks/{id}/report`` takes ``multipart/form-data`` (fields ``result``, ``note``, any
number of files ``photos``; each file is fixed in the evidence store on the chain
``inspector:<id>``) or a JSON body ``{"result", "note"}``. The multipart body is parsed
here (stdlib only), since python-multipart is not a dependency.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api import task_push
from api.access import Perm
from api.auth import User, current_user
from api.errors import Problem, Text, Time, errors, invalid, storable
from api.task_access import require, viewer_access
from contract.clue import EvidenceRef
from contract.records import Evidence
from contract.settings import get_settings
from storage import access as access_store
from storage import tasks as store
from storage.evidence_store import EvidenceStore
from storage.evidence_trust import HeadsFile, WrongStateFolder, signer_for

router = APIRouter(tags=["tasks"], lifespan=task_push.lifespan)
_NO_KEY = {503: {"model": Problem, "description": "the API's state folder holds no evidence "
                 "key, but the database holds evidence: it is not the writers' folder"}}
MAX_BODY = 32 * 1024 * 1024
_SEES_ALL = ("admin", "center_operator")


def is_inspector(user: User, task: dict[str, Any]) -> bool:
    """First or second inspector of the task (a drawn inspection has a pair)."""
    return user.id in (task["assignee"], task["co_assignee"])


def can_see(user: User, task: dict[str, Any]) -> bool:
    if user.role in _SEES_ALL:
        return True
    if user.role == "department_user":
        return task["department"] == user.department
    return is_inspector(user, task) and task["department"] == user.department


def can_manage(user: User, task: dict[str, Any]) -> bool:
    return user.is_admin or (user.role == "department_user"
                             and task["department"] == user.department)


async def _visible(request: Request, user: User, task_id: int) -> dict[str, Any]:
    row = await store.get(request.app.state.pool, task_id)
    if row is None or not can_see(user, row):
        raise HTTPException(404, "not found")
    return row


async def _current(request: Request, user: User, task_id: int) -> dict[str, Any]:
    row = await store.get(request.app.state.pool, task_id)
    assert row is not None
    return store.task_json(row, access=viewer_access(user, row))


@router.get("/tasks")
async def list_tasks(request: Request,
                     state: Literal["open", "assigned", "accepted", "closed"] | None = None,
                     department: Text | None = None,
                     limit: int = Query(200, ge=1, le=2000),
                     user: User = Depends(current_user)) -> list[dict]:
    """The caller's inbox: an inspector's own tasks, a department's, or (admin) all."""
    pool = request.app.state.pool
    if user.role in _SEES_ALL:
        rows = await store.inbox(pool, department=department, state=state, limit=limit)
    elif user.role == "department_user":
        rows = await store.inbox(pool, department=user.department, state=state, limit=limit)
    else:  # an inspector: tasks where it is first or second inspector
        rows = await store.inbox(pool, assignee=user.id, department=user.department,
                                 state=state, limit=limit)
    now = datetime.now(UTC)
    return [store.task_json(r, now, viewer_access(user, r)) for r in rows]


@router.get("/tasks/{task_id}")
async def get_task(task_id: int, request: Request,
                   user: User = Depends(current_user)) -> dict:
    """The task; its clue's details only with the owner's data or a grant (audited)."""
    row = await _visible(request, user, task_id)
    access = viewer_access(user, row)
    if access != "none":
        await require(request, user, row, "view")
    return store.task_json(row, access=access)


class AccessAsk(BaseModel):
    purpose: Text = Field(default="", description="default: the task and its clue")
    permissions: list[Perm] = Field(default=["history", "evidence"], min_length=1)
    valid_until: Time | None = Field(default=None, description="default: 30 days from now")


@router.post("/tasks/{task_id}/access-request", status_code=201, responses=errors(400))
async def ask_access(task_id: int, request: Request, body: AccessAsk | None = None,
                     user: User = Depends(current_user)) -> dict:
    """Ask the owner of the task's clue resource for access: one call, sensible defaults."""
    task = await _visible(request, user, task_id)
    body = body or AccessAsk()
    owner = task["owner_dept"]
    kind, rid = task["resource_kind"], task["resource_id"]
    if owner is None:
        raise HTTPException(404, f"{kind} {rid!r} has no owner to ask")
    if owner == user.department:
        raise HTTPException(400, f"{kind} {rid!r} is already your department's")
    now = datetime.now(UTC)
    until = body.valid_until or now + timedelta(days=30)
    if until <= now:
        raise invalid(("body", "valid_until"), "valid_until must be in the future", until)
    return await access_store.create_request(
        request.app.state.pool, user=user.as_dict(), kind=kind, resource_id=rid,
        owner_dept=owner, purpose=body.purpose or f"task {task_id}: clue {task['clue_id']}",
        permissions=sorted(set(body.permissions)), valid_from=now, valid_until=until)


class AssignIn(BaseModel):
    inspector: Text


@router.post("/tasks/{task_id}/assign", responses=errors(400, 409))
async def assign(task_id: int, body: AssignIn, request: Request,
                 user: User = Depends(current_user)) -> dict:
    """Assign (or reassign) by hand to an inspector of the task's department."""
    task = await _visible(request, user, task_id)
    if not can_manage(user, task):
        raise HTTPException(403, "needs the department's department_user or admin")
    pool = request.app.state.pool
    if not await store.is_inspector_of(pool, body.inspector, task["department"]):
        raise invalid(("body", "inspector"),
                      f"{body.inspector!r} is no inspector of {task['department']}", body.inspector)
    if not await store.assign(pool, task_id, body.inspector, user.id):
        raise HTTPException(409, "task is closed")
    return await _current(request, user, task_id)


@router.post("/tasks/{task_id}/accept", responses=errors(409))
async def accept(task_id: int, request: Request, user: User = Depends(current_user)) -> dict:
    task = await _visible(request, user, task_id)
    if not is_inspector(user, task):
        raise HTTPException(403, "only the assigned inspectors accept a task")
    await require(request, user, task, "accept")
    if not await store.accept(request.app.state.pool, task_id, user.id):
        raise HTTPException(409, f"task is {task['state']}, not assigned")
    return await _current(request, user, task_id)


def parse_multipart(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """Parts of a multipart/form-data body: name, filename, content_type, data."""
    boundary = None
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        raise invalid(("header", "content-type"), "multipart body without boundary")
    parts = []
    for chunk in (b"\r\n" + body).split(b"\r\n--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise invalid(("body",), "malformed multipart part")
        part: dict[str, Any] = {"name": None, "filename": None,
                                "content_type": "application/octet-stream", "data": data}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                for item in value.split(";")[1:]:
                    k, _, v = item.strip().partition("=")
                    if k.lower() in ("name", "filename"):
                        part[k.lower()] = v.strip('"')
            elif key.strip().lower() == "content-type":
                part["content_type"] = value.strip()
        parts.append(part)
    return parts


async def _evidence_store(request: Request) -> EvidenceStore:
    """The API's evidence writer: the state folder's key, never a new one beside evidence
    signed by another (``storage.evidence_trust.signer_for``)."""
    state = request.app.state
    cached = getattr(state, "evidence_store", None)
    if cached is None or cached.pool is not state.pool:  # one per pool (lifespan)
        settings = get_settings()
        signer = await asyncio.to_thread(signer_for, settings.database_url, settings.state_dir)
        ev_store = EvidenceStore(state.pool, signer, media=settings.evidence_media,
                                 folder=settings.evidence_folder,
                                 heads=HeadsFile(settings.state_dir))
        await ev_store.register_key()
        state.evidence_store = ev_store
    return state.evidence_store


@router.post("/tasks/{task_id}/report", responses={**errors(409, 413), **_NO_KEY},
             openapi_extra={"requestBody": {"content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["result"], "properties": {
        "result": {"type": "string", "enum": list(store.RESULTS)},
        "note": {"type": "string"},
        "photos": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    "application/json": {"schema": {"type": "object", "required": ["result"], "properties": {
        "result": {"type": "string", "enum": list(store.RESULTS)},
        "note": {"type": "string"}}}}}}})
async def report(task_id: int, request: Request, user: User = Depends(current_user)) -> dict:
    """The inspector's result (closes the task); field photos become signed evidence."""
    task = await _visible(request, user, task_id)
    if not is_inspector(user, task):
        raise HTTPException(403, "only the assigned inspectors report")
    if task["state"] not in ("assigned", "accepted"):
        raise HTTPException(409, f"task is {task['state']}")
    await require(request, user, task, "report")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, "report too large")
    ctype = request.headers.get("content-type", "")
    fields: dict[str, str] = {}
    files: list[dict[str, Any]] = []
    if ctype.lower().startswith("multipart/form-data"):
        for part in parse_multipart(body, ctype):
            if part["filename"] is not None:
                if part["data"]:
                    files.append(part)
            elif part["name"]:
                fields[part["name"]] = part["data"].decode("utf-8", "replace")
    else:
        try:
            data = json.loads(body or b"{}")
            fields = {k: str(v) for k, v in data.items() if k in ("result", "note")}
        except (ValueError, AttributeError) as exc:
            raise invalid(("body",), "body is multipart/form-data or a JSON object") from exc
    for key, value in fields.items():
        storable(("body", key), value)
    for f in files:
        storable(("body", "photos", "filename"), f["filename"])
        storable(("body", "photos", "content_type"), f["content_type"])
    result = fields.get("result")
    if result not in store.RESULTS:
        raise invalid(("body", "result"), f"result must be one of {', '.join(store.RESULTS)}",
                      result)
    ids: list[str] = []
    if files:
        now = datetime.now(UTC)
        try:
            ev_store = await _evidence_store(request)
        except WrongStateFolder as exc:
            raise HTTPException(503, str(exc)) from exc
        ids = await ev_store.add([Evidence(  # a drawn inspection's photos go under its task
            clue_id=task["clue_id"] or f"task-{task_id}", source=f"inspector:{user.id}", time=now,
            item=EvidenceRef(media_type=f["content_type"], name=f["filename"] or "photo",
                             content=f["data"]),
            detector="inspector", params={"task_id": task_id, "result": result})
            for f in files])
    if not await store.report(request.app.state.pool, task_id, user.id, result,
                              fields.get("note", ""), ids):
        raise HTTPException(409, "task changed meanwhile")
    return await _current(request, user, task_id)


def _may_refer(user: User, task: dict[str, Any]) -> bool:
    return can_manage(user, task) or is_inspector(user, task)


@router.post("/tasks/{task_id}/refer", responses={**errors(409), **_NO_KEY})
async def refer(task_id: int, request: Request, user: User = Depends(current_user)) -> dict:
    """Make the clue's case bundle (``storage.case_bundle``) and keep it with the task."""
    task = await _visible(request, user, task_id)
    if not _may_refer(user, task):
        raise HTTPException(403, "needs the department's department_user, admin or assignee")
    if task["state"] != "closed" or task["result"] != "confirmed":
        raise HTTPException(409, "only a closed, confirmed task is referred")
    if task["clue_id"] is None:
        raise HTTPException(409, "a case bundle is made for a clue; this task has none")
    await require(request, user, task, "refer")
    settings = get_settings()

    def export() -> bytes:
        from storage.case_bundle import export_case

        signer = signer_for(settings.database_url, settings.state_dir)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "bundle.zip"
            export_case(str(settings.database_url), task["clue_id"], out, signer=signer,
                        folder=settings.evidence_folder,
                        trusted_keys=settings.evidence_trusted_keys)
            return out.read_bytes()

    try:
        data = await asyncio.to_thread(export)
    except WrongStateFolder as exc:
        raise HTTPException(503, str(exc)) from exc
    digest = hashlib.sha256(data).hexdigest()
    if not await store.store_referral(request.app.state.pool, task_id, user.id, data, digest):
        raise HTTPException(409, "task changed meanwhile")
    return {**await _current(request, user, task_id), "bundle_url": f"/tasks/{task_id}/bundle",
            "bundle_size": len(data)}


@router.get("/tasks/{task_id}/bundle", response_class=Response,
            responses={200: {"content": {"application/zip": {}},
                             "description": "the case bundle"}})
async def download_bundle(task_id: int, request: Request,
                          user: User = Depends(current_user)) -> Response:
    task = await _visible(request, user, task_id)
    if not _may_refer(user, task):
        raise HTTPException(404, "not found")
    await require(request, user, task, "bundle")
    data = await store.bundle(request.app.state.pool, task_id)
    if data is None:
        raise HTTPException(404, "no referral bundle")
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="case-{task["clue_id"]}.zip"'})
