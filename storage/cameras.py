"""Camera registry and camera health: the ``cameras`` and ``camera_health`` tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool


@dataclass
class CameraRow:
    id: str
    url: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthRow:
    time: datetime
    camera: str
    online: bool
    fps: float | None
    detail: str = ""


async def load_cameras(pool: AsyncConnectionPool) -> list[CameraRow]:
    """The cameras an ingester runs: the active ones (a retired camera is stopped)."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT id, url, config FROM cameras WHERE status = 'active'"
                                 " ORDER BY id")
        return [CameraRow(r[0], r[1], r[2] or {}) for r in await cur.fetchall()]


async def load_camera_config(pool: AsyncConnectionPool, camera: str) -> dict[str, Any] | None:
    """The camera's ``config`` (None when the camera is not registered).

    The camera's position, when registered, comes along as ``config["location"]`` (a GeoJSON
    point) so that its clues can be routed to the zone the camera watches.
    """
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT config, lon, lat FROM cameras WHERE id = %s", (camera,))
        row = await cur.fetchone()
    if row is None:
        return None
    config = dict(row[0] or {})
    if row[1] is not None and row[2] is not None:
        config["location"] = {"type": "Point", "coordinates": [float(row[1]), float(row[2])]}
    return config
