"""The resource directory and single-resource changes: where the access request flow starts.

``GET /resources`` lists the pooled stations, cameras and scene collections to every
signed-in user, each with what the caller's department may do with it (``access``:
``owner``, ``granted`` until ``granted_until``, ``pending`` or ``none``); a department asks
for one with ``POST /access-requests``. Listing a resource shows no data of it: readings,
clues and evidence stay behind ``api/access.py``'s checks.

Admins, and an owner department's ``department_user``, create (``POST
/resources/{kind}``), change (``PATCH``) and retire (``DELETE``: status ``retired``, the row
and its history kept) single resources. The checks are those of ``offsite registry
validate`` (``geo/resource_checks.py``), answered as a 422 per field. Every change is
audited and notifies running processes (``storage/resources.py``).
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic import StringConstraints as S

from api.access import can_manage
from api.auth import User, current_user, require_roles
from api.errors import Text, errors, invalid, storable
from contract.settings import get_settings
from geo.resource_checks import check_owner, check_resource
from storage import resources as store
from storage.unregistered import unregistered_sources

Kind = Literal["station", "camera", "scene_collection"]
Access = Literal["owner", "granted", "pending", "none"]
router = APIRouter(tags=["resources"])

Name = Annotated[str, S(pattern=r"^[^\x00]*$", max_length=500)]
Id = Annotated[str, S(pattern=r"^[^\x00]*$", max_length=500)]
Number = Annotated[float, Field(allow_inf_nan=False)]


class ResourceItem(BaseModel):
    kind: Kind
    id: str
    name: str
    owner_dept: str | None
    status: Literal["active", "retired"]
    location: dict[str, Any] | None = Field(description="GeoJSON Point (WGS84), if located")
    access: Access = Field(description="what the caller's department may do with it")
    granted_until: datetime | None = Field(None, description="end of the live grant")
    permissions: list[str] = Field(description="permissions the department holds on it")


class ResourcePage(BaseModel):
    items: list[ResourceItem]
    next_cursor: str | None


class ResourceFields(BaseModel):
    """Fields of a resource; which apply depends on the kind (others are a 422)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    owner_dept: Id | None = Field(None, description="default: the caller's department"
                                  " (admins: the monitoring center)")
    lon: Number | None = None
    lat: Number | None = None
    properties: dict[str, Any] | None = None
    st: Text | None = Field(None, description="station: HJ 212 system type (ST)")
    standard: Text | None = Field(None, description="station: limit standard")
    password: Text | None = Field(None, description="station: HJ 212 PW (never shown)")
    interval_s: int | None = Field(None, ge=1, le=2**31 - 1,
                                   description="station: reporting interval, seconds")
    url: Text | None = Field(None, description="camera: rtsp, rtsps, http(s) or file URL")
    config: dict[str, Any] | None = Field(None, description="camera: video configuration"
                                          " (docs/video-config.md)")


class ResourceIn(ResourceFields):
    id: Id


class ResourcePatch(ResourceFields):
    status: Literal["active", "retired"] | None = None


class ResourceOut(ResourceItem):
    properties: dict[str, Any] = Field(default_factory=dict)
    detail: dict[str, Any] | None = Field(None, description="kind-specific fields, for"
                                          " admins and the owner department")


def _encode_cursor(row: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps([row["kind"], row["id"]]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        kind, rid = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return (storable(("query", "cursor"), str(kind)), storable(("query", "cursor"), str(rid)))
    except Exception as exc:
        raise invalid(("query", "cursor"), "bad cursor", cursor) from exc


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if (len(box) != 4 or not all(math.isfinite(v) for v in box)
            or box[0] > box[2] or box[1] > box[3]):
        raise invalid(("query", "bbox"), "bbox is minlon,minlat,maxlon,maxlat", text)
    return box  # type: ignore[return-value]


@router.get("/resources")
async def list_resources(
    request: Request,
    kind: Kind | None = None,
    owner: Text | None = Query(None, description="owner department id"),
    bbox: str | None = Query(None, description="minlon,minlat,maxlon,maxlat"),
    q: Text | None = Query(None, description="text in the id or the name"),
    status: Literal["active", "retired", "all"] = "active",
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    user: User = Depends(current_user),
) -> ResourcePage:
    """The pooled resources, in (kind, id) order; page on with ``next_cursor``."""
    rows = await store.directory(
        request.app.state.pool, dept=user.department, kind=kind, owner=owner,
        status=None if status == "all" else status, bbox=parse_bbox(bbox) if bbox else None,
        q=q, after=_decode_cursor(cursor) if cursor else None, limit=limit)
    return ResourcePage(items=[ResourceItem(**r) for r in rows],
                        next_cursor=_encode_cursor(rows[-1]) if len(rows) == limit else None)


def _detail(kind: str, row: dict) -> dict[str, Any]:
    if kind == "station":
        return {"st": row["st"], "standard": row["standard"], "interval_s": row["interval_s"],
                "has_password": row["password"] is not None}
    if kind == "camera":
        return {"url": redact(row["url"]), "config": row["config"]}
    return {}


def redact(url: str) -> str:
    """A camera URL without its password (the desk shows URLs; credentials stay inside)."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url


async def _out(request: Request, user: User, kind: str, resource_id: str) -> ResourceOut:
    pool = request.app.state.pool
    item = await store.directory_item(pool, dept=user.department, kind=kind,
                                      resource_id=resource_id)
    row = await store.get_row(pool, kind, resource_id)
    if item is None or row is None:
        raise HTTPException(404, "not found")
    return ResourceOut(**item, properties=row.get("properties") or {},
                       detail=_detail(kind, row) if can_manage(user, row["owner_dept"])
                       else None)


@router.get("/resources/{kind}/{resource_id}")
async def get_resource(kind: Kind, resource_id: Text, request: Request,
                       user: User = Depends(current_user)) -> ResourceOut:
    """One resource of the directory (retired ones too)."""
    return await _out(request, user, kind, resource_id)


def _values(kind: str, body: ResourceFields) -> dict[str, Any]:
    """The fields given, refusing those that do not apply to ``kind`` (a 422)."""
    given = body.model_dump(exclude_unset=True)
    allowed = set(store.COLUMNS[kind]) | {"id"}
    wrong = sorted(k for k in given if k not in allowed)
    if wrong:
        raise RequestFaults({k: [f"{k} does not apply to a {kind.replace('_', ' ')}"]
                             for k in wrong})
    for column in ("properties", "config"):
        if column in given:
            given[column] = given[column] or {}  # null: empty (the columns are NOT NULL)
            reasons = json_faults(given[column])
            if reasons:
                raise RequestFaults({column: reasons})
    if kind == "camera" and given.get("config"):
        _check_camera_config(given["config"])
    return given


def json_faults(value: Any, path: str = "") -> list[str]:
    """Why a JSON value cannot be stored as jsonb: NUL or broken Unicode in a string or a
    key, NaN or infinity (Python's JSON reader lets those in; PostgreSQL does not)."""
    if isinstance(value, dict):
        return [f for k, v in value.items()
                for f in (_text_faults(k, f"{path}{k!r}") + json_faults(v, f"{path}{k!r}."))]
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in json_faults(v, f"{path}[{i}].")]
    if isinstance(value, str):
        return _text_faults(value, path.rstrip(".") or "value")
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{path.rstrip('.') or 'value'}: not a finite number"]
    return []


def _text_faults(text: str, where: str) -> list[str]:
    try:
        storable(("body",), text)
    except Exception:
        return [f"{where}: text with a NUL or broken Unicode character"]
    return []


def _check_camera_config(config: dict[str, Any]) -> None:
    from detectors.video_config import CameraConfig

    try:
        CameraConfig.model_validate(config)
    except ValidationError as exc:
        raise RequestFaults({"config": [f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                        for e in exc.errors()]}) from None


class RequestFaults(Exception):
    """Faults by field, answered as one 422 listing them all."""

    def __init__(self, faults: dict[str, list[str]]) -> None:
        super().__init__(faults)
        self.faults = faults

    def as_422(self) -> Exception:
        from fastapi.exceptions import RequestValidationError

        return RequestValidationError([
            {"type": "value_error", "loc": ("body", field), "msg": msg, "input": None}
            for field, msgs in self.faults.items() for msg in msgs])


async def _check_owner(request: Request, owner: str | None) -> None:
    if owner is None or owner == _center():  # the center is created when missing
        return
    known = await store.active_departments(request.app.state.pool, [owner])
    reasons = check_owner(owner, known)
    if reasons:
        raise RequestFaults({"owner_dept": reasons})


WRITE_ERRORS = errors(400, 409)  # 400: a body that does not parse


@router.post("/resources/{kind}", status_code=201, responses=WRITE_ERRORS)
async def create_resource(kind: Kind, body: ResourceIn, request: Request,
                          user: User = Depends(current_user)) -> ResourceOut:
    """Register one resource; the owner department (default: the caller's) must exist."""
    try:
        values = _values(kind, body)
        rid = values.pop("id")
        if values.get("owner_dept") is None:
            values["owner_dept"] = (_center() if user.is_admin else user.department)
        if not can_manage(user, values["owner_dept"]):
            raise HTTPException(403, "admins, or a department_user for their own department")
        faults = check_resource(kind, {"id": rid, **values}, creating=True)
        if faults:
            raise RequestFaults(faults)
        await _check_owner(request, values["owner_dept"])
    except RequestFaults as exc:
        raise exc.as_422() from None
    row = await store.create(request.app.state.pool, kind, rid,
                             {k: v for k, v in values.items() if v is not None},
                             user.as_dict(), default_owner=_center())
    if row is None:
        raise HTTPException(409, f"{kind} {rid!r} exists (retired ones too: PATCH its status)")
    return await _out(request, user, kind, rid)


def _center() -> str:
    return get_settings().registry_default_owner


async def _managed(request: Request, user: User, kind: str, resource_id: str) -> dict:
    """The row, if the caller may change it (404 if it may not see it exists, else 403)."""
    row = await store.get_row(request.app.state.pool, kind, resource_id)
    if row is None:
        raise HTTPException(404, "not found")
    if not can_manage(user, row["owner_dept"]):
        raise HTTPException(403, "only admins and the owner department change a resource")
    return row


@router.patch("/resources/{kind}/{resource_id}", responses=WRITE_ERRORS)
async def change_resource(kind: Kind, resource_id: Text, body: ResourcePatch,
                          request: Request, user: User = Depends(current_user)) -> ResourceOut:
    """Change the fields given (absent fields stay as they are); ``owner_dept``: admins."""
    row = await _managed(request, user, kind, resource_id)
    try:
        values = _values(kind, body)
        for column in ("name", "status", "url"):
            if column in values and values[column] is None:
                raise RequestFaults({column: [f"{column} cannot be emptied"]})
        if "owner_dept" in values and values["owner_dept"] != row["owner_dept"]:
            if not user.is_admin:
                raise HTTPException(403, "only admins move a resource to another department")
            if values["owner_dept"] is None:
                values["owner_dept"] = _center()
        located = {"lon": values.get("lon", row.get("lon")),
                   "lat": values.get("lat", row.get("lat"))}
        merged = {**values, **(located if {"lon", "lat"} & values.keys() else {})}
        faults = check_resource(kind, merged, creating=False)
        if faults:
            raise RequestFaults(faults)
        await _check_owner(request, values.get("owner_dept"))
    except RequestFaults as exc:
        raise exc.as_422() from None
    done = await store.update(request.app.state.pool, kind, resource_id, merged,
                              user.as_dict(), default_owner=_center())
    if done is None:
        raise HTTPException(404, "not found")
    return await _out(request, user, kind, resource_id)


@router.delete("/resources/{kind}/{resource_id}", responses=WRITE_ERRORS)
async def retire_resource(kind: Kind, resource_id: Text, request: Request,
                          user: User = Depends(current_user)) -> ResourceOut:
    """Retire a resource: it leaves the directory and the running system; history stays."""
    await _managed(request, user, kind, resource_id)
    await store.retire(request.app.state.pool, kind, resource_id, user.as_dict())
    return await _out(request, user, kind, resource_id)


class UnregisteredSource(BaseModel):
    kind: str
    id: str
    first_seen: datetime
    last_seen: datetime
    readings: int = Field(description="values received (re-deliveries included)")
    last_source: str
    registered: bool = Field(description="registered since (listed with ?all=true)")


@router.get("/unregistered-sources")
async def list_unregistered(request: Request, include_registered: bool = Query(
        False, alias="all", description="also those registered since"),
        user: User = Depends(require_roles("admin", "center_operator"))
) -> list[UnregisteredSource]:
    """Stations that sent readings without being registered (README, "Unregistered
    sources"): kept and counted, waiting for someone to register them or find the sender."""
    rows = await unregistered_sources(request.app.state.pool, include_registered=include_registered)
    return [UnregisteredSource(**r) for r in rows]
