"""The evidence store on a real PostgreSQL: fixing, idempotence, and `offsite evidence verify`
catching every kind of tampering in the database and in the media folder."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from contract.clue import Clue, EvidenceRef
from contract.settings import Settings
from storage.db import open_pool
from storage.evidence_chain import KEY_FILE, EvidenceSigner, sha256_hex
from storage.evidence_store import EvidenceStore, clue_source, fix_clue_evidence

ROOT = Path(__file__).resolve().parents[2]
OFFSITE = ROOT / ".venv" / "bin" / "offsite"
T0 = datetime(2016, 1, 1, 0, 0, tzinfo=UTC)
PNG = bytes.fromhex("89504e470d0a1a0a") + b"fake frame "


def env_clue(station: str, start: datetime, items: list[EvidenceRef], **kw) -> Clue:
    return Clue(modality="env", kind="exceedance", rule="GB3095-2012/II/a34004/24h",
                subject=station, start=start, time=start + timedelta(hours=1),
                detector="env.exceedance", detector_version="1.2.0",
                params={"limit": 75.0, "window_h": 24}, evidence=items, **kw)


def video_clue(camera: str, start: datetime, items: list[EvidenceRef]) -> Clue:
    return Clue(modality="video", kind="occlusion", rule="tamper/occlusion", subject=camera,
                start=start, time=start, detector="video.tamper", detector_version="0.3",
                params={"threshold": 0.35}, evidence=items)


def json_item(name: str, value: object) -> EvidenceRef:
    return EvidenceRef(media_type="application/json", name=name,
                       content=json.dumps(value).encode())


def sample_clues() -> list[Clue]:
    return [
        env_clue("S1", T0, [json_item("window.json", {"pm25": [80, 90, 95]}),
                            json_item("limits.json", {"a34004": 75}),
                            EvidenceRef(media_type="image/png", name="plot.png", content=PNG)]),
        video_clue("C1", T0, [EvidenceRef(media_type="image/jpeg", name="before.jpg",
                                          content=b"\xff\xd8 before"),
                              EvidenceRef(media_type="image/jpeg", name="after.jpg",
                                          content=b"\xff\xd8 after")]),
        env_clue("S1", T0 + timedelta(days=1), [json_item("window.json", {"pm25": [99]})]),
    ]


def settings_for(url: str, state: Path, media: str = "database") -> Settings:
    return Settings(database_url=url, state_dir=state, evidence_media=media)


async def add(settings: Settings, *clues: Clue) -> list[str]:
    pool = await open_pool(settings.database_url, min_size=1, max_size=2)
    try:
        store = await EvidenceStore.open(pool, settings)
        return await store.add(*clues)
    finally:
        await pool.close()


def offsite(url: str, state: Path, *args: str, media: str = "database"
            ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OFFSITE_DATABASE_URL": url, "OFFSITE_STATE_DIR": str(state),
           "OFFSITE_EVIDENCE_MEDIA": media}
    env.pop("OFFSITE_EVIDENCE_DIR", None)
    return subprocess.run([str(OFFSITE), "evidence", *args], env=env, cwd=state.parent,
                          capture_output=True, text=True, timeout=120)


def rows(url: str, source: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return [(int(s), i) for s, i in conn.execute(
            "SELECT seq, id FROM evidence WHERE source = %s ORDER BY seq", (source,))]


@pytest.fixture()
def stocked(fresh_db: str, tmp_path: Path) -> tuple[str, Path, list[str]]:
    state = tmp_path / "state"
    ids = asyncio.run(add(settings_for(fresh_db, state), *sample_clues()))
    return fresh_db, state, ids


def test_fix_two_sources_idempotent_and_verify_ok(stocked: tuple[str, Path, list[str]]) -> None:
    url, state, ids = stocked
    assert len(ids) == len(set(ids)) == 6
    assert [s for s, _ in rows(url, "station:S1")] == [1, 2, 3, 4]
    assert [s for s, _ in rows(url, "camera:C1")] == [1, 2]
    # re-delivered clues: same ids back, nothing chained twice
    again = asyncio.run(add(settings_for(url, state), *reversed(sample_clues())))
    assert sorted(again) == sorted(ids)
    assert len(rows(url, "station:S1")) == 4 and len(rows(url, "camera:C1")) == 2
    with psycopg.connect(url) as conn:
        rec = conn.execute(
            "SELECT sha256, content, detector, detector_version, params, uri, key_id"
            " FROM evidence WHERE name = 'plot.png'").fetchone()
        keys = conn.execute("SELECT key_id, public_key_pem FROM evidence_keys").fetchall()
    assert rec[0] == sha256_hex(PNG) and bytes(rec[1]) == PNG and rec[5] is None
    assert rec[2:5] == ("env.exceedance", "1.2.0", {"limit": 75, "window_h": 24})
    assert (state / KEY_FILE).stat().st_mode & 0o777 == 0o600
    signer = EvidenceSigner.load_or_create(state)
    assert keys == [(signer.key_id, signer.public_pem())] and rec[6] == signer.key_id

    out = offsite(url, state, "verify")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK: 6 record(s) in 2 chain(s)" in out.stdout
    pem = offsite(url, state, "public-key")
    assert pem.returncode == 0 and pem.stdout.strip() == signer.public_pem().strip()


def test_fix_clue_evidence_helper_and_concurrent_appends(fresh_db: str, tmp_path: Path) -> None:
    settings = settings_for(fresh_db, tmp_path / "state")
    clues = [env_clue("S9", T0 + timedelta(hours=i), [json_item(f"w{i}.json", {"i": i})])
             for i in range(12)]
    # an item with neither bytes nor a hash is left out, not a crash of the sink
    clues[5].evidence.append(EvidenceRef(media_type="image/png", name="empty.png"))

    async def main() -> tuple[list[list[str]], list[str]]:
        pool = await open_pool(fresh_db, min_size=1, max_size=4)
        try:
            first = await asyncio.gather(*(fix_clue_evidence(pool, c, settings) for c in clues))
            again = await fix_clue_evidence(pool, clues[3], settings)
            return first, again
        finally:
            await pool.close()

    first, again = asyncio.run(main())
    assert again == first[3]
    assert [len(ids) for ids in first] == [1] * 12
    assert [s for s, _ in rows(fresh_db, clue_source(clues[0]))] == list(range(1, 13))
    out = offsite(fresh_db, tmp_path / "state", "verify")
    assert out.returncode == 0, out.stdout + out.stderr


TAMPER = {
    "content": ("UPDATE evidence SET content = 'forged'::bytea WHERE source = 'station:S1'"
                " AND seq = 2", 2, ["content_modified"]),
    "delete": ("DELETE FROM evidence WHERE source = 'station:S1' AND seq = 2", 3,
               ["deleted", "seq 2 missing"]),
    # seq 3 and 4 have different times: (source, seq, time) stays unique while swapping
    "swap": ("UPDATE evidence SET seq = CASE seq WHEN 3 THEN 4 ELSE 3 END"
             " WHERE source = 'station:S1' AND seq IN (3, 4)", 4, ["reordered"]),
    "metadata": ("UPDATE evidence SET params = '{\"limit\": 150}' WHERE source = 'camera:C1'"
                 " AND seq = 1", 1, ["metadata_modified"]),
    "re-signed": ("UPDATE evidence SET signature = repeat('ab', 64) WHERE source = 'camera:C1'"
                  " AND seq = 2", 2, ["bad_signature"]),
}


@pytest.mark.parametrize("kind", list(TAMPER))
def test_verify_names_tampered_record(stocked: tuple[str, Path, list[str]], kind: str) -> None:
    url, state, _ = stocked
    sql, seq, words = TAMPER[kind]
    source = "camera:C1" if "camera" in sql else "station:S1"
    named = dict(rows(url, source))[seq]
    with psycopg.connect(url) as conn:
        conn.execute(sql)
    out = offsite(url, state, "verify")
    assert out.returncode == 1, out.stdout
    fails = [ln for ln in out.stdout.splitlines() if ln.startswith("FAIL")]
    assert any(named in ln and all(w in ln for w in words) for ln in fails), out.stdout
    report = json.loads(offsite(url, state, "verify", "--json").stdout)
    assert not report["ok"] and named in {i["record"] for i in report["issues"]}
    # the other chain is untouched and not blamed
    other = "camera:C1" if source == "station:S1" else "station:S1"
    assert all(i["source"] == source for i in report["issues"]), (other, report)


def test_verify_since_and_lost_tail(stocked: tuple[str, Path, list[str]]) -> None:
    url, state, _ = stocked
    heads = state.parent / "heads.json"
    assert offsite(url, state, "verify", "--save-heads", str(heads)).returncode == 0
    with psycopg.connect(url) as conn:
        cut = conn.execute("SELECT fixed_at FROM evidence WHERE source = 'station:S1'"
                           " AND seq = 4").fetchone()[0]
    out = offsite(url, state, "verify", "--since", cut.isoformat(), "--json")
    assert out.returncode == 0, out.stdout
    assert json.loads(out.stdout)["checked"] < 6
    with psycopg.connect(url) as conn:  # the newest record of a chain disappears
        conn.execute("DELETE FROM evidence WHERE source = 'station:S1' AND seq = 4")
    # caught by default: the writers keep each chain's head in the state folder
    out = offsite(url, state, "verify")
    assert out.returncode == 1 and "seq 4 missing at the end" in out.stdout, out.stdout
    out = offsite(url, state, "verify", "--heads", str(heads))
    assert out.returncode == 1 and "seq 4 missing at the end" in out.stdout


def test_folder_media_modified_or_missing_file(fresh_db: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    ids = asyncio.run(add(settings_for(fresh_db, state, "folder"), *sample_clues()))
    assert len(ids) == 6
    digest = sha256_hex(PNG)
    path = state / "evidence" / digest[:2] / digest[2:]
    assert path.read_bytes() == PNG
    with psycopg.connect(fresh_db) as conn:
        content, uri, rec_id = conn.execute(
            "SELECT content, uri, id FROM evidence WHERE sha256 = %s", (digest,)).fetchone()
    assert content is None and uri == f"folder:{digest[:2]}/{digest[2:]}"
    assert offsite(fresh_db, state, "verify", media="folder").returncode == 0

    path.chmod(0o644)
    path.write_bytes(PNG + b"edited")
    out = offsite(fresh_db, state, "verify", media="folder")
    assert out.returncode == 1
    assert any(rec_id in ln and "content_modified" in ln for ln in out.stdout.splitlines())
    path.unlink()
    out = offsite(fresh_db, state, "verify", media="folder")
    assert out.returncode == 1
    assert any(rec_id in ln and "content_missing" in ln for ln in out.stdout.splitlines())


def test_heads_file_follows_the_writers(stocked: tuple[str, Path, list[str]]) -> None:
    url, state, _ = stocked
    heads = json.loads((state / "evidence_heads.json").read_text())["heads"]
    assert {s: h["seq"] for s, h in heads.items()} == {"station:S1": 4, "camera:C1": 2}
    with psycopg.connect(url) as conn:
        newest = conn.execute("SELECT record_hash FROM evidence WHERE source = 'station:S1'"
                              " AND seq = 4").fetchone()[0]
    assert heads["station:S1"]["record_hash"] == newest


def test_planted_key_does_not_make_a_re_signed_record_pass(
        stocked: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    """Issue 20 case 7: a record re-signed with a key planted in evidence_keys fails."""
    from dataclasses import replace

    from storage.evidence_store import load_records

    url, state, _ = stocked
    planted = EvidenceSigner.load_or_create(tmp_path / "intruder")
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO evidence_keys (key_id, public_key_hex, public_key_pem)"
                     " VALUES (%s, %s, %s)",
                     (planted.key_id, planted.public_hex(), planted.public_pem()))
        rec = load_records(conn, "source = 'camera:C1' AND seq = 2")[0]
        forged = replace(rec, name="harmless.jpg", key_id=planted.key_id)
        digest = forged.compute_hash()
        conn.execute("UPDATE evidence SET name = %s, key_id = %s, record_hash = %s,"
                     " signature = %s WHERE id = %s",
                     (forged.name, planted.key_id, digest, planted.sign(digest), rec.id))
    out = offsite(url, state, "verify")
    assert out.returncode == 1, out.stdout
    assert any(rec.id in ln and "bad_signature" in ln and "unknown key" in ln
               for ln in out.stdout.splitlines()), out.stdout
    # trusting the planted key explicitly is the operator's decision, and it then passes
    pem = tmp_path / "planted.pem"
    pem.write_text(planted.public_pem())
    out = offsite(url, state, "verify", "--key", str(pem))
    assert not any("bad_signature" in ln for ln in out.stdout.splitlines()), out.stdout


def test_pinned_key_alone_verifies(stocked: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    """A checker without the private key pins the public one (settings) and verifies."""
    url, state, _ = stocked
    signer = EvidenceSigner.load_or_create(state)
    checker = tmp_path / "checker"
    checker.mkdir()
    env = {**os.environ, "OFFSITE_DATABASE_URL": url, "OFFSITE_STATE_DIR": str(checker),
           "OFFSITE_EVIDENCE_TRUSTED_KEYS": json.dumps([signer.public_hex()])}
    run = subprocess.run([str(OFFSITE), "evidence", "verify"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "OK: 6 record(s)" in run.stdout, run.stdout + run.stderr
    env.pop("OFFSITE_EVIDENCE_TRUSTED_KEYS")
    run = subprocess.run([str(OFFSITE), "evidence", "verify"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "no trusted key" in run.stderr, run.stdout + run.stderr
    assert not (checker / KEY_FILE).exists()


def test_public_key_refuses_a_new_key_where_evidence_exists(
        stocked: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    """Issue 20 case 8: pointed at the wrong folder, public-key says so instead of
    silently making and printing a new key."""
    url, _, _ = stocked
    wrong = tmp_path / "wrong"
    out = offsite(url, wrong, "public-key")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "OFFSITE_STATE_DIR" in out.stderr and "6 evidence record(s)" in out.stderr
    assert out.stdout == "" and not (wrong / KEY_FILE).exists()
