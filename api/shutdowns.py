"""Declared shutdowns (heavy-pollution emergency responses): ``POST /shutdowns`` and
``GET /shutdowns``.

A province declares an emergency response level for a region and a period; the
enterprises of its emergency list must halt production. The monitoring center (or an
admin) declares it here instead of editing ``shutdowns.csv``; the power rules apply it on
the registry notice (``production_in_shutdown``). Every declaration is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, model_validator

from api.auth import User, current_user, require_roles
from api.errors import Text, errors, in_range, invalid
from storage.power import declare_shutdown, shutdown_list

router = APIRouter(tags=["shutdowns"])
When = Annotated[AwareDatetime, AfterValidator(in_range)]  # with its offset, in range


class ShutdownIn(BaseModel):
    scope: Text = Field(description="an entity id, or a zone id (a jurisdiction: all of it)")
    level: Text = Field(description="the response level, e.g. 红色 / orange / I")
    start: When
    end: When

    @model_validator(mode="after")
    def _ordered(self) -> ShutdownIn:
        if self.end <= self.start:
            raise ValueError("end is not after start")
        return self


class ShutdownOut(BaseModel):
    id: str
    scope: str
    level: str
    start: datetime
    end: datetime
    status: str


@router.post("/shutdowns", status_code=201, responses=errors(400))
async def declare(request: Request, body: ShutdownIn,
                  user: User = Depends(require_roles("admin", "center_operator"))
                  ) -> ShutdownOut:
    """Declare a shutdown (the same scope and start again: its level and end change)."""
    row = await declare_shutdown(request.app.state.pool, scope=body.scope, level=body.level,
                                 start=body.start, end=body.end, user=user.as_dict())
    if row is None:
        raise invalid(("body", "scope"), "neither a registered entity nor a zone", body.scope)
    return ShutdownOut(**row)


@router.get("/shutdowns")
async def list_shutdowns(request: Request,
                         since: When | None = Query(
                             None, description="ended after this (default: now)"),
                         user: User = Depends(current_user)) -> list[ShutdownOut]:
    """Declared shutdowns in force or to come."""
    rows = await shutdown_list(request.app.state.pool, since or datetime.now(UTC))
    return [ShutdownOut(**r) for r in rows]
