"""Checks of one registry resource's fields given through the API: the folder's rules.

A resource created or changed with ``POST``/``PATCH /resources/...`` is checked with the
same column parsers as a row of a registry folder (``geo.registry_folder.COLUMNS``, what
``offsite registry validate`` and ``import`` use): coordinates inside WGS84 ranges, camera
URLs rtsp/rtsps/http(s)/file, positive reporting intervals, owners that exist. On top, what
only the API needs: an id usable in a URL path (no slash, no blanks around it), and a
position for a new station or camera (the directory places them; a folder row may leave
the columns out to keep what the database has). Each check returns every reason, never
raises, so the API answers one 422 listing them all. Pure: what exists is passed in.
"""

from __future__ import annotations

from collections.abc import Container

from geo.registry_folder import CAMERA_SCHEMES, COLUMNS

RESOURCE_KINDS = ("station", "camera", "scene_collection")
LOCATED = ("station", "camera")  # kinds that must have a position
MAX_ID = 200
__all__ = ["CAMERA_SCHEMES", "check_id", "check_owner", "check_resource"]


def _cell(value: object) -> str:
    """A value as a folder's CSV cell holds it (None: an empty cell)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_field(kind: str, column: str, value: object) -> list[str]:
    """The folder's parser of ``column`` for ``kind`` on ``value`` (no parser: fine)."""
    parse = COLUMNS.get(kind, {}).get(column)
    if parse is None:
        return []
    try:
        parse(_cell(value))
    except ValueError as exc:
        return [f"{column}: {exc}"]
    return []


def check_id(value: object) -> list[str]:
    """An id is non-empty printable text without surrounding blanks or path separators."""
    if not isinstance(value, str) or not value.strip():
        return ["id is empty"]
    out = []
    if value != value.strip():
        out.append("id has leading or trailing blanks")
    if len(value) > MAX_ID:
        out.append(f"id is longer than {MAX_ID} characters")
    if not value.isprintable() or "/" in value or "\\" in value:
        out.append("id holds a control character or a slash")
    return out


def check_owner(owner: str | None, departments: Container[str]) -> list[str]:
    """``owner`` must be a department the caller knows (None: the monitoring center)."""
    if owner is None or owner in departments:
        return []
    return [f"owner department {owner!r} is not defined"]


def check_resource(kind: str, fields: dict[str, object], *, creating: bool) -> dict[str, list[str]]:
    """Faults of a resource's fields, by field name (owner departments checked apart).

    ``creating``: a new resource (id, and a position for stations and cameras, required);
    otherwise only the fields given are checked (a change).
    """
    if kind not in RESOURCE_KINDS:
        return {"kind": [f"unknown resource kind {kind!r}"]}
    faults: dict[str, list[str]] = {}
    if creating or "id" in fields:
        faults["id"] = check_id(fields.get("id"))
    unplaced = (creating and kind in LOCATED and fields.get("lon") is None
                and fields.get("lat") is None)
    if unplaced:
        faults["location"] = [f"a new {kind} needs lon and lat"]
    if creating and kind == "camera" and not fields.get("url"):
        faults["url"] = ["url is required"]
    values = dict(fields)
    if kind in LOCATED and (creating or "lon" in fields or "lat" in fields):
        values.setdefault("lon", None)  # one coordinate alone is a fault, as an empty cell
        values.setdefault("lat", None)
    for column, value in values.items():
        if column in ("id", "owner_dept", "config"):
            continue  # owners against the database, configs as camera configurations
        if column in ("lon", "lat") and unplaced:
            continue
        reasons = check_field(kind, column, value)
        if reasons:
            faults.setdefault("location" if column in ("lon", "lat") else column,
                              []).extend(reasons)
    return {k: v for k, v in faults.items() if v}
