"""Async connection pool: the one way processes reach the database."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool


async def open_pool(database_url: str, min_size: int = 1, max_size: int = 8) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(database_url, min_size=min_size, max_size=max_size, open=False,
                               kwargs={"autocommit": False})
    await pool.open(wait=True, timeout=30)
    return pool
