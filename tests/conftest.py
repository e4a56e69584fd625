"""Shared fixtures: real local services, started once per test session.

PostgreSQL, Mosquitto and the Tansu Kafka broker run from the state folder of the project
on free loopback ports and are stopped at the end. A service that cannot start fails the
tests that need it with the reason (never a skip).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from offsite.services import EmbeddedServices

ROOT = Path(__file__).resolve().parent.parent
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
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_db(services: EmbeddedServices) -> str:
    from storage.migrate import migrate

    migrate(services.database_url)
    return services.database_url


@pytest.fixture()
def fresh_db(services: EmbeddedServices) -> Iterator[str]:
    """An empty, migrated database of its own, for tests that count rows."""
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


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture()
def live_api(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The real API under uvicorn on a free port and a fresh database; yields its base URL
    once the server answers and its LISTEN for clue changes is in place."""
    import threading
    import time

    import uvicorn

    from offsite.services import free_port
    from offsite.settings import get_settings

    monkeypatch.setenv("OFFSITE_DATABASE_URL", fresh_db)
    get_settings.cache_clear()
    from api.app import app

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                        timeout_graceful_shutdown=1))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    while not app.state.clue_feed.listening.is_set():
        assert time.monotonic() < deadline, "the API's LISTEN did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)
    get_settings.cache_clear()
