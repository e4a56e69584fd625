"""Bearer-token authentication: every data endpoint depends on ``current_user``.

Tokens are issued with ``offsite token issue USER`` (shown once) and stored hashed
(``storage.users``). A user belongs to one department and has one role: ``admin``,
``center_operator``, ``inspector`` or ``department_user`` (what each may see is in
``api/access.py``).

The token goes in the ``Authorization: Bearer`` header. Only for ``GET /clues/stream`` it may
instead be the ``access_token`` query parameter, because a browser's ``EventSource`` cannot
send headers (the monitoring-center page, ``api/web.py``); the header wins when both are
given. Elsewhere the query parameter is ignored, so tokens stay out of most URLs and logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from storage import users

bearer = HTTPBearer(auto_error=False, description="token from `offsite token issue USER`")
QUERY_TOKEN_PATHS = frozenset({"/clues/stream"})  # GET only: for EventSource


@dataclass(frozen=True)
class User:
    id: str
    department: str
    role: str
    token_id: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "department": self.department, "role": self.role}


async def current_user(request: Request,
                       creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> User:
    if creds is None and request.method == "GET" and request.url.path in QUERY_TOKEN_PATHS:
        token = request.query_params.get("access_token")
        if token:
            creds = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise HTTPException(401, "bearer token required",
                            headers={"WWW-Authenticate": "Bearer"})
    row = await users.authenticate(request.app.state.pool, creds.credentials)
    if row is None:
        raise HTTPException(401, "invalid, expired or revoked token",
                            headers={"WWW-Authenticate": "Bearer"})
    return User(id=row["id"], department=row["department"], role=row["role"],
                token_id=row["token_id"])


def require_roles(*roles: str):  # type: ignore[no-untyped-def]
    """A dependency that lets only these roles through (403 otherwise)."""
    async def check(user: User = Depends(current_user)) -> User:
        if user.role not in roles:
            raise HTTPException(403, f"needs role {' or '.join(roles)}")
        return user
    return check
