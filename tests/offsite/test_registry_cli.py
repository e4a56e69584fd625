"""``offsite registry validate | import | export`` as a clerk runs them: exit codes, one
fault per line on stdout, one line of counts per kind, and a round trip that changes
nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.registry_folders import write_broken, write_clean

ROOT = Path(__file__).resolve().parents[2]


def offsite(*args: str | Path, db: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("OFFSITE_DATABASE_URL", None)
    if db:
        env["OFFSITE_DATABASE_URL"] = db
    return subprocess.run([sys.executable, "-m", "offsite", "registry", *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_validate_exit_codes(tmp_path: Path) -> None:
    clean = offsite("validate", write_clean(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout == ""
    broken, expected = write_broken(tmp_path / "broken")
    bad = offsite("validate", broken)
    assert bad.returncode == 1, bad.stderr
    lines = bad.stdout.splitlines()
    assert len(lines) == len(expected)
    assert all(got.startswith(want) for got, want in zip(lines, expected, strict=True))
    assert offsite("validate", tmp_path / "missing").returncode == 2
    (tmp_path / "empty").mkdir()
    assert offsite("validate", tmp_path / "empty").returncode == 2
    assert offsite("validate").returncode == 2


def test_import_prints_counts_and_export_round_trips(fresh_db: str, tmp_path: Path) -> None:
    first = offsite("import", ROOT / "samples" / "registry", db=fresh_db)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.splitlines() == [
        "department: 25 added, 0 changed, 0 unchanged, 0 retired",
        "entity: 2 added, 0 changed, 0 unchanged, 0 retired",
        "station: 2 added, 0 changed, 0 unchanged, 0 retired",
        "camera: 1 added, 0 changed, 0 unchanged, 0 retired",
        "scene_collection: 1 added, 0 changed, 0 unchanged, 0 retired",
        "zone: 15 added, 0 changed, 0 unchanged, 0 retired",
        "routing_rule: 16 added, 0 changed, 0 unchanged, 0 retired",
        "power_channel: 3 added, 0 changed, 0 unchanged, 0 retired",
    ]
    out = tmp_path / "export"
    exported = offsite("export", out, "--with-secrets", db=fresh_db)
    assert exported.returncode == 0, exported.stderr
    assert "station: 2 written" in exported.stdout
    again = offsite("import", out, "--prune", db=fresh_db)
    assert again.returncode == 0, again.stderr
    assert all(" 0 added, 0 changed," in line and line.endswith(" 0 retired")
               for line in again.stdout.splitlines()), again.stdout
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT password FROM stations WHERE id = %s",
                            ("BJDONGSI0000000000000212",)).fetchone() == ("123456",)


def test_broken_import_exits_1_and_writes_nothing(fresh_db: str, tmp_path: Path) -> None:
    broken, _ = write_broken(tmp_path / "broken")
    run = offsite("import", broken, db=fresh_db)
    assert run.returncode == 1
    assert "stations.csv:4: lon: empty coordinate" in run.stdout.splitlines()
    assert "nothing imported" in run.stderr
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM stations").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM departments").fetchone() == (0,)


def test_import_without_a_database_is_a_usage_error(tmp_path: Path) -> None:
    run = offsite("import", write_clean(tmp_path / "c"))
    assert run.returncode == 2 and "OFFSITE_DATABASE_URL" in run.stderr


def test_demo_imports_its_registry_folder(fresh_db: str, tmp_path: Path) -> None:
    """``offsite demo`` registers its stations, camera, zones and rules through the same
    ``offsite registry import``, with the camera at this run's RTSP address."""
    from contract.settings import Settings
    from offsite.runner import (
        DEMO_CAMERA,
        DEMO_HJ212_STATION,
        DEMO_STATION,
        Supervisor,
        import_demo_registry,
    )
    from storage.registry import load_router

    sup = Supervisor(Settings(database_url=fresh_db, state_dir=tmp_path / "state"))
    sup.env = {**os.environ, "OFFSITE_DATABASE_URL": fresh_db}
    import_demo_registry(sup, "rtsp://127.0.0.1:45678/demo")
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT url, owner_dept FROM cameras WHERE id = %s",
                            (DEMO_CAMERA,)).fetchone() == (
            "rtsp://127.0.0.1:45678/demo", "110101-ecology-environment")
        stations = dict(conn.execute("SELECT id, point(lon, lat)::text FROM stations"))
        assert set(stations) == {DEMO_STATION, DEMO_HJ212_STATION}
        lon, lat = conn.execute("SELECT lon, lat FROM stations WHERE id = %s",
                                (DEMO_STATION,)).fetchone()  # type: ignore[misc]
        route = load_router(conn).route({"type": "Point", "coordinates": [lon, lat]},
                                        modality="env", kind="exceedance")
    assert route.department == "110101-ecology-environment"
    assert route.jurisdiction is not None and route.jurisdiction.id == "cn-110101"
    # the repository's folder itself is untouched (the demo edits a copy)
    assert "45678" not in (ROOT / "samples" / "registry" / "cameras.csv").read_text()
