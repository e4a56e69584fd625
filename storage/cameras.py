"""Camera registry and camera health: the ``cameras`` and ``camera_health`` tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
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


def register_camera(conn: psycopg.Connection, camera: str, name: str, url: str, lon: float,
                    lat: float, config: dict[str, Any]) -> None:
    """Add a camera to the registry, or point an existing one at ``url`` with ``config``
    (its name and position stay); for ``offsite demo``'s sample camera."""
    conn.execute(
        "INSERT INTO cameras (id, name, url, lon, lat, config) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, config = EXCLUDED.config",
        (camera, name, url, lon, lat, Jsonb(config)))


async def load_cameras(pool: AsyncConnectionPool) -> list[CameraRow]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT id, url, config FROM cameras ORDER BY id")
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


async def write_health(pool: AsyncConnectionPool, rows: Sequence[HealthRow]) -> None:
    if not rows:
        return
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO camera_health (time, camera, online, fps, detail)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (camera, time) DO NOTHING",
            [(r.time, r.camera, r.online, r.fps, r.detail) for r in rows])


async def open_clue_starts(pool: AsyncConnectionPool, kind: str) -> dict[str, datetime]:
    """Start of the open (not closed) clue of ``kind`` per subject, to resume episodes."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT subject, min(start) FROM clues WHERE kind = %s AND state <> 'closed'"
            " AND modality = 'video' GROUP BY subject", (kind,))
        return {r[0]: r[1] for r in await cur.fetchall()}
