"""Camera and station health, filtered by department access (permission ``live``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from api.access import unrestricted
from api.auth import User, current_user
from storage import access as store

router = APIRouter(tags=["health"])


@router.get("/health/cameras")
async def cameras(request: Request, user: User = Depends(current_user)) -> list[dict]:
    """Latest ``camera_health`` row per camera the caller may see."""
    return await store.camera_health(request.app.state.pool, dept=user.department,
                                     unrestricted=unrestricted(user, "health"))


@router.get("/health/stations")
async def stations(request: Request, user: User = Depends(current_user)) -> list[dict]:
    """Last reading time per station against its interval: ok, late, never or unknown."""
    return await store.station_health(request.app.state.pool, dept=user.department,
                                      unrestricted=unrestricted(user, "health"))
