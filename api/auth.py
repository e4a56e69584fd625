"""Bearer-token authentication: every data endpoint depends on ``current_user``.

Tokens are issued with ``offsite token issue USER`` (shown once) and stored hashed
(``storage.users``). A user belongs to one department and has one role: ``admin``,
``center_operator``, ``inspector`` or ``department_user`` (what each may see is in
``api/access.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from storage import users

bearer = HTTPBearer(auto_error=False, description="token from `offsite token issue USER`")


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
