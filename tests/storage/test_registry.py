"""The registry on a real PostgreSQL: import a folder, route over what it registered,
re-import without changes, refuse a broken folder whole, read GBK, export and re-import."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from storage.registry import (
    Actor,
    Counts,
    RegistryInvalid,
    export_folder,
    import_folder,
    load_router,
)
from tests.registry_folders import FARMLAND, write_broken, write_clean

ROOT = Path(__file__).resolve().parents[2]
OWNER = "provincial-monitoring-center"
ACTOR = Actor("test-user", OWNER)
KINDS = ["department", "station", "camera", "scene_collection", "zone", "routing_rule"]


def run_import(url: str, folder: Path, prune: bool = False) -> dict[str, Counts]:
    with psycopg.connect(url) as conn:
        return import_folder(conn, folder, prune=prune, default_owner=OWNER, actor=ACTOR)


def snapshot(url: str) -> dict[str, list]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("departments", "stations", "cameras", "scene_collections", "zones",
                          "routing_rules", "audit_log")}


def test_import_then_route_to_the_imported_department(fresh_db: str, tmp_path: Path) -> None:
    result = run_import(fresh_db, write_clean(tmp_path / "lixia"))
    assert list(result) == KINDS
    assert result["department"].added == 3  # two from the file, plus the default owner
    assert result["station"] == Counts(added=2)
    assert result["zone"] == Counts(added=3) and result["routing_rule"] == Counts(added=2)
    inside = [[117.025, 36.625], [117.035, 36.625], [117.035, 36.635], [117.025, 36.635],
              [117.025, 36.625]]
    with psycopg.connect(fresh_db) as conn:
        router = load_router(conn)
        route = router.route({"type": "Polygon", "coordinates": [inside]},
                             modality="satellite", kind="change")
        assert route.department == "370102-natural-resources"
        assert route.zones[0].zone.id == "pf-370102-0001"
        assert route.assignments[0].rule.why == "farmland conversion"
        env = router.route({"type": "Point", "coordinates": [117.08, 36.68]}, modality="env",
                           kind="exceedance")
        assert env.department == "370102-ecology-environment"
        assert env.jurisdiction is not None and env.jurisdiction.name == "历下区"
        owner, props, pw = conn.execute(
            "SELECT owner_dept, properties, password FROM stations WHERE id = 'LX-0001'"
        ).fetchone()  # type: ignore[misc]
        assert (owner, props, pw) == ("370102-ecology-environment", {"site_code": "S-17"},
                                      "secret1")
        assert conn.execute("SELECT owner_dept FROM stations WHERE id = 'LX-0002'"
                            ).fetchone() == (OWNER,)
        actions = dict(conn.execute("SELECT action, count(*) FROM audit_log GROUP BY 1"))
        assert actions["registry.import"] == 1 and actions["registry.added"] == 10  # + owner


def test_second_import_changes_nothing(fresh_db: str, tmp_path: Path) -> None:
    folder = write_clean(tmp_path / "lixia")
    run_import(fresh_db, folder)
    before = snapshot(fresh_db)
    again = run_import(fresh_db, folder, prune=True)
    assert all(c.added == c.changed == c.retired == 0 for c in again.values()), again
    assert again["station"].unchanged == 2 and again["zone"].unchanged == 3
    after = snapshot(fresh_db)
    audit = after.pop("audit_log")
    assert after == {k: v for k, v in before.items() if k != "audit_log"}
    assert len(audit) == len(before["audit_log"]) + 1  # only the import's own summary


def test_broken_folder_changes_nothing_and_lists_every_fault(fresh_db: str,
                                                             tmp_path: Path) -> None:
    run_import(fresh_db, write_clean(tmp_path / "lixia"))
    before = snapshot(fresh_db)
    folder, expected = write_broken(tmp_path / "broken")
    with pytest.raises(RegistryInvalid) as err:
        run_import(fresh_db, folder, prune=True)
    got = [str(f) for f in err.value.faults]
    # the database defines 370102-natural-resources now, so that rule is no longer a fault
    expected = [e for e in expected if "370102-natural-resources" not in e]
    assert len(got) == len(expected), got
    for line, want in zip(got, expected, strict=True):
        assert line.startswith(want)
    assert snapshot(fresh_db) == before


def test_gbk_file_with_chinese_names_imports(fresh_db: str, tmp_path: Path) -> None:
    run_import(fresh_db, write_clean(tmp_path / "gbk", encoding="gbk"))
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT name FROM departments WHERE id = %s",
                            ("370102-natural-resources",)).fetchone() == ("历下区自然资源局",)
        assert conn.execute("SELECT name FROM cameras").fetchone() == ("大明湖东门",)


def test_partial_file_leaves_absent_columns_and_prune_retires(fresh_db: str,
                                                              tmp_path: Path) -> None:
    run_import(fresh_db, write_clean(tmp_path / "lixia"))
    part = tmp_path / "part"
    part.mkdir()
    (part / "stations.csv").write_text("id,owner_dept\nLX-0001,370102-natural-resources\n")
    with psycopg.connect(fresh_db, autocommit=True) as listener:
        listener.execute("LISTEN offsite_registry")
        result = run_import(fresh_db, part, prune=True)
        notices = [n.payload for n in listener.notifies(timeout=2, stop_after=1)]
    assert list(result) == ["station"]  # only the kinds whose file is present
    assert result["station"] == Counts(changed=1, retired=1)
    assert notices == ["station"]
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT id, name, lon, owner_dept, status FROM stations ORDER BY id"
                            ).fetchall()
        assert rows == [("LX-0001", "泉城广场", 117.02, "370102-natural-resources", "active"),
                        ("LX-0002", "Multi\nline name", 117.03, OWNER, "retired")]
        assert conn.execute("SELECT count(*) FROM cameras WHERE status = 'active'"
                            ).fetchone() == (1,)  # no cameras.csv: cameras untouched
    # the whole file again: LX-0001 back to its owner, LX-0002 active again
    assert run_import(fresh_db, tmp_path / "lixia")["station"] == Counts(changed=2)


def test_export_then_import_is_unchanged(fresh_db: str, tmp_path: Path) -> None:
    run_import(fresh_db, ROOT / "samples" / "registry")
    run_import(fresh_db, write_clean(tmp_path / "lixia"))
    with psycopg.connect(fresh_db) as conn:
        written = export_folder(conn, tmp_path / "out")
        export_folder(conn, tmp_path / "secret", with_secrets=True)
    assert written["zone"] == 18 and written["camera"] == 2
    assert (tmp_path / "out" / "stations.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert "secret1" not in (tmp_path / "out" / "stations.csv").read_text(encoding="utf-8-sig")
    assert "secret1" in (tmp_path / "secret" / "stations.csv").read_text(encoding="utf-8-sig")
    assert (tmp_path / "out" / "cameras" / "DEMO-CAM-1.yaml").is_file()
    before = snapshot(fresh_db)
    for out in ("out", "secret"):
        again = run_import(fresh_db, tmp_path / out, prune=True)
        assert all(c.added == c.changed == c.retired == 0 for c in again.values()), again
    after = snapshot(fresh_db)
    after.pop("audit_log")
    before.pop("audit_log")
    assert after == before


def test_rule_table_is_replaced_whole(fresh_db: str, tmp_path: Path) -> None:
    folder = write_clean(tmp_path / "lixia")
    run_import(fresh_db, folder)
    (folder / "routing.csv").write_text("clue,zone_kind,department,why\n"
                                        "*,*,natural-resources,all to land\n")
    assert run_import(fresh_db, folder)["routing_rule"] == Counts(changed=1, retired=1)
    with psycopg.connect(fresh_db) as conn:
        route = load_router(conn).route({"type": "Polygon", "coordinates": [FARMLAND]},
                                        modality="env", kind="exceedance")
    assert route.department == "370102-natural-resources"
