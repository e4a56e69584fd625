"""API fixtures: a TestClient on a fresh database, and users with bearer tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from contract.settings import get_settings
from storage.users import add_user, issue_token


@pytest.fixture()
def api(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("OFFSITE_DATABASE_URL", fresh_db)
    get_settings.cache_clear()
    from api.app import app

    with TestClient(app) as c:
        yield c
    get_settings.cache_clear()


@pytest.fixture()
def make_user(fresh_db: str) -> Callable[..., dict[str, str]]:
    """``make_user(name, dept, role)``: the Authorization header of a new user's token."""
    def make(name: str, department: str, role: str) -> dict[str, str]:
        with psycopg.connect(fresh_db) as conn:
            add_user(conn, name, department, role)
            _, token = issue_token(conn, name)
        return {"Authorization": f"Bearer {token}"}
    return make
