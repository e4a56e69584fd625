"""Random inspection draws ("double random, one public") and joint inspections.

* ``POST /inspections/draws``: draw entities and inspector pairs for a department and a
  period (``oversight/draws.py``; rates and caps from the settings). A department's
  ``department_user`` draws for its own department; ``admin`` and ``center_operator`` for
  any. The same department, period and seed is the same draw (a retry answers 200 with it).
  Each drawn entity becomes a task of the department for both inspectors; tasks of several
  departments at one entity in one window merge into a joint inspection.
* ``GET /inspections/draws`` and ``GET /inspections/draws/{id}``: the public list the rule
  requires (entity, inspectors, date; no risk, no scores), readable without a token.
* ``GET /inspections/draws/{id}/verify``: recompute the draw from its recorded seed,
  parameters and inputs and compare (the department, admins, the monitoring center).
* ``POST /inspections/merge``: group all open tasks into joint inspections now (draws group
  the entities they draw; new clue tasks are grouped as they appear by ``api/joint_watch.py``).
* ``GET /inspections`` (``?joint=true``: joint ones only) and ``GET /inspections/{id}``: the
  visit and each department's task with its own result.
"""

from __future__ import annotations

import secrets
from datetime import date

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from api import joint_watch
from api.auth import User, current_user
from api.errors import Text, errors, invalid
from contract.settings import get_settings
from oversight.draws import DrawError
from storage import inspections as store

router = APIRouter(tags=["inspections"], lifespan=joint_watch.lifespan)
_SEES_ALL = ("admin", "center_operator")
MAX_DAYS = 366


class DrawIn(BaseModel):
    department: Text
    from_: date = Field(alias="from", description="first day of the period (local)")
    to: date = Field(description="last day of the period (included)")
    count: int | None = Field(default=None, ge=0, le=100_000,
                              description="default: the expected count from the rates")
    seed: int | None = Field(default=None, ge=0, lt=2**63, description="default: random")


def _may_draw(user: User, department: str) -> bool:
    return user.role in _SEES_ALL or (user.role == "department_user"
                                      and user.department == department)


@router.post("/inspections/draws", status_code=201, responses=errors(400, 403))
async def make_draw(body: DrawIn, request: Request, response: Response,
                    user: User = Depends(current_user)) -> dict:
    """Draw a department's random inspections for a period; the public list comes back."""
    if not _may_draw(user, body.department):
        raise HTTPException(403, "needs the department's department_user, admin or "
                                 "center_operator")
    days = (body.to - body.from_).days + 1
    if not 1 <= days <= MAX_DAYS:
        raise invalid(("body", "to"), f"the period is 1 to {MAX_DAYS} days", body.to.isoformat())
    pool = request.app.state.pool
    if not await store.department_exists(pool, body.department):
        raise invalid(("body", "department"), f"no department {body.department!r}",
                      body.department)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**63)
    try:
        draw_id, made = await store.create_draw(
            pool, department=body.department, start=body.from_, end=body.to, seed=seed,
            count=body.count, settings=get_settings(), user=user.as_dict())
    except DrawError as exc:
        raise invalid(("body", "department"), str(exc), body.department) from exc
    if not made:
        response.status_code = 200
    return await store.get_draw(pool, draw_id) or {}


@router.get("/inspections/draws")
async def list_draws(request: Request, department: Text | None = None,
                     limit: int = Query(200, ge=1, le=2000)) -> list[dict]:
    """Every draw, newest first (public: no token needed)."""
    return await store.list_draws(request.app.state.pool, department, limit)


@router.get("/inspections/draws/{draw_id}", responses=errors(404))
async def get_draw(draw_id: int, request: Request) -> dict:
    """A draw's public list: entity, inspectors, planned date (public: no token needed)."""
    draw = await store.get_draw(request.app.state.pool, draw_id)
    if draw is None:
        raise HTTPException(404, "not found")
    return draw


@router.get("/inspections/draws/{draw_id}/verify", responses=errors(404))
async def verify_draw(draw_id: int, request: Request,
                      user: User = Depends(current_user)) -> dict:
    """Recompute the draw from its recorded seed and inputs; ``reproduced`` says it matches."""
    record = await store.draw_record(request.app.state.pool, draw_id)
    if record is None or not _may_draw(user, record["department"]):
        raise HTTPException(404, "not found")
    again = store.recompute(record).as_rows()
    return {"draw_id": draw_id, "seed": record["seed"], "algorithm":
            record["params"].get("algorithm"), "reproduced": again == record["items"],
            "recorded": record["items"], "recomputed": again}


@router.post("/inspections/merge", responses=errors(403))
async def merge(request: Request, user: User = Depends(current_user)) -> list[dict]:
    """Group open tasks at one entity in overlapping windows into joint inspections."""
    if user.role not in (*_SEES_ALL, "department_user"):
        raise HTTPException(403, "needs department_user, admin or center_operator")
    return await store.merge_all(request.app.state.pool, get_settings().local_utc_offset_hours)


@router.get("/inspections")
async def list_inspections(request: Request, department: Text | None = None,
                           joint: bool = Query(False, description="only joint inspections"),
                           limit: int = Query(200, ge=1, le=2000),
                           user: User = Depends(current_user)) -> list[dict]:
    """Visits of the caller's department (admins and the monitoring center: any, or all)."""
    if user.role not in _SEES_ALL:
        if department not in (None, user.department):
            raise HTTPException(404, "not found")
        department = user.department
    return await store.list_inspections(request.app.state.pool, department, joint, limit)


@router.get("/inspections/{inspection_id}", responses=errors(404))
async def get_inspection(inspection_id: int, request: Request,
                         user: User = Depends(current_user)) -> dict:
    """The visit (entity, window, date, departments) and each department's task and result."""
    found = await store.get_inspection(request.app.state.pool, inspection_id)
    if found is None or (user.role not in _SEES_ALL
                         and user.department not in found["departments"]):
        raise HTTPException(404, "not found")
    return found
