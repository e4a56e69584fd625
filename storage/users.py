"""Users and their bearer tokens.

A token is ``<token id>.<random secret>``; only sha256 of the whole token is stored, so the
database never holds anything that authenticates. The token is shown once, when issued.
The synchronous functions serve the ``offsite user|token`` commands; ``authenticate`` serves
the API.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

ROLES = ("center_operator", "inspector", "department_user", "admin")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """(token id, token); the id is public (for revocation), the token is the secret."""
    token_id = "tok_" + secrets.token_hex(6)
    return token_id, f"{token_id}.{secrets.token_urlsafe(32)}"


def add_user(conn: psycopg.Connection, name: str, department: str, role: str,
             department_name: str | None = None) -> None:
    """Create (or update) a user; the department is created if it does not exist."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    conn.execute("INSERT INTO departments (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                 (department, department_name or department))
    conn.execute("INSERT INTO users (id, department, role) VALUES (%s, %s, %s)"
                 " ON CONFLICT (id) DO UPDATE SET department = EXCLUDED.department,"
                 " role = EXCLUDED.role, disabled = false", (name, department, role))


def issue_token(conn: psycopg.Connection, user: str,
                expires_at: datetime | None = None) -> tuple[str, str]:
    """Issue a token for a user; returns (token id, token). Only the hash is stored."""
    if conn.execute("SELECT 1 FROM users WHERE id = %s", (user,)).fetchone() is None:
        raise LookupError(f"no user {user!r}")
    token_id, token = new_token()
    conn.execute("INSERT INTO api_tokens (id, user_id, token_sha256, expires_at)"
                 " VALUES (%s, %s, %s, %s)", (token_id, user, hash_token(token), expires_at))
    return token_id, token


def revoke_token(conn: psycopg.Connection, token_id: str) -> bool:
    cur = conn.execute("UPDATE api_tokens SET revoked_at = now()"
                       " WHERE id = %s AND revoked_at IS NULL", (token_id,))
    return cur.rowcount == 1


async def authenticate(pool: AsyncConnectionPool, token: str) -> dict[str, Any] | None:
    """The user a live token belongs to (id, department, role, token_id), else None."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "UPDATE api_tokens t SET last_used_at = now() FROM users u"
            " WHERE t.token_sha256 = %s AND t.user_id = u.id AND t.revoked_at IS NULL"
            " AND (t.expires_at IS NULL OR t.expires_at > now()) AND NOT u.disabled"
            " RETURNING u.id, u.department, u.role, t.id AS token_id", (hash_token(token),))
        return await cur.fetchone()
