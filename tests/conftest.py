"""Shared fixtures: real local services, started once per test session.

PostgreSQL, Mosquitto and the Tansu Kafka broker run from the state folder of the project
on free loopback ports and are stopped at the end. A service that cannot start fails the
tests that need it with the reason (never a skip).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from offsite.services import EmbeddedServices, remove_state

ROOT = Path(__file__).resolve().parent.parent
# The tests replay historic sample data (Dongsi 2013-2017) and fixed dates through the live
# ingesters, as the demo does: widen the live time window the same way the demo does. Times
# outside 1970..2100 stay refused whatever the window (contract.input_rules.check_time).
os.environ.setdefault("OFFSITE_TIME_WINDOW_PAST_DAYS", "36500")
SAMPLES = ROOT / "samples"


@pytest.fixture(scope="session")
def services() -> Iterator[EmbeddedServices]:
    state = ROOT / ".state" / f"test-{os.getpid()}"
    svc = EmbeddedServices(state)
    try:
        svc.start()
    except Exception as exc:
        pytest.fail(f"local services did not start: {exc}", pytrace=False)
    try:
        yield svc
    finally:
        svc.stop()
        remove_state(state)


@pytest.fixture(scope="session")
def migrated_db(services: EmbeddedServices) -> str:
    from storage.migrate import migrate

    migrate(services.database_url)
    return services.database_url


@contextlib.contextmanager
def new_database(services: EmbeddedServices) -> Iterator[str]:
    """An empty, migrated database of its own (dropped afterwards); yields its URL."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = services.database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = services.database_url.rsplit("/", 1)[0] + f"/{name}"
    from storage.migrate import migrate

    migrate(url)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture()
def fresh_db(services: EmbeddedServices) -> Iterator[str]:
    """An empty, migrated database of its own, for tests that count rows."""
    with new_database(services) as url:
        yield url


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture()
def live_api(fresh_db: str) -> Iterator[str]:
    """The real API under uvicorn on a free port and a fresh database; yields its base URL
    once the server answers and its LISTEN for clue changes is in place."""
    from offsite.services import serve_api

    with serve_api(fresh_db) as base:
        yield base
