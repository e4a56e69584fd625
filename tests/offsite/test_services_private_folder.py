"""A clone inside a folder only its owner may enter (``/root``, ``mktemp -d``).

As root, PostgreSQL runs as ``postgres``, which cannot enter such a folder: initdb failed
with "Permission denied" and every database test with it. Its folders then live in the
temp dir, linked from the state folder, and go away with it.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from offsite.services import PG_LINK, EmbeddedServices, remove_state


def test_postgres_runs_for_a_state_folder_inside_a_private_folder(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    state = private / "clone" / ".state"
    svc = EmbeddedServices(state)
    try:
        svc.start(kafka=False, mqtt=False)
    except Exception as exc:
        pytest.fail(f"PostgreSQL did not start under a private folder: {exc}", pytrace=False)
    try:
        with psycopg.connect(svc.database_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        link = state / PG_LINK
        if os.geteuid() == 0:  # the server runs as postgres: its folders are elsewhere
            assert link.is_symlink() and (link.resolve() / "pgdata" / "PG_VERSION").exists()
            outside = link.resolve()
        else:  # the server runs as us: everything stays in the state folder
            assert not link.exists() and (state / "pgdata" / "PG_VERSION").exists()
            outside = None
        svc.stop_service("postgres")
        svc.start_service("postgres")  # the same data again
        with psycopg.connect(svc.database_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        svc.stop()
    remove_state(state)
    assert not state.exists()
    assert outside is None or not outside.exists()
