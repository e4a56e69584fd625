"""`offsite case export` / `case verify` on a real PostgreSQL: the bundle checks out on its
own (file hashes, record hashes, Ed25519 signatures, chain) and tampering is caught."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from contract.clue import Clue, EvidenceRef
from contract.settings import Settings, get_settings
from offsite.cmd_case import app
from storage.case_bundle import verify_bundle
from storage.db import open_pool
from storage.evidence_chain import EvidenceSigner
from storage.evidence_store import EvidenceStore
from storage.registry import Actor, import_folder

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2016, 1, 1, 0, 0, tzinfo=UTC)
JPEG = b"\xff\xd8\xff\xe0 occluded frame \xff\xd9"
# a point inside the demo zones, so routing has something to say
POINT = {"type": "Point", "coordinates": [119.938, 32.4575]}


def clue(camera: str, start: datetime, items: list[EvidenceRef], state: str = "open") -> Clue:
    return Clue(modality="video", kind="occlusion", rule="tamper/occlusion", subject=camera,
                state=state, start=start, time=start + timedelta(minutes=len(items)),
                location=POINT, summary=f"camera {camera} covered", detector="video.tamper",
                detector_version="0.3", params={"threshold": 0.35}, evidence=items)


def insert_clue(url: str, c: Clue) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            'INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,'
            ' "end", confidence, location, metrics, summary, detector) VALUES'
            ' (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)'
            ' ON CONFLICT (clue_id) DO UPDATE SET state = EXCLUDED.state, time = EXCLUDED.time',
            (c.clue_id, c.modality, c.kind, c.rule, c.subject, c.state, c.start, c.time, c.end,
             c.confidence, Jsonb(c.location), Jsonb(c.metrics), c.summary, c.detector))
        conn.execute("INSERT INTO clue_events (time, clue_id, kind, state, payload)"
                     " VALUES (%s, %s, %s, %s, %s)",
                     (c.time, c.clue_id, c.kind, c.state,
                      Jsonb(c.model_dump(mode="json", exclude={"evidence"}))))


@pytest.fixture()
def case(fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    state = tmp_path / "state"
    settings = Settings(database_url=fresh_db, state_dir=state, evidence_media="folder")
    first = clue("C7", T0, [EvidenceRef(media_type="image/jpeg", name="frame-0001.jpg",
                                        content=JPEG)])
    other = clue("C7", T0 - timedelta(days=1), [EvidenceRef(
        media_type="application/json", name="other.json", content=b'{"other": true}')])
    update = clue("C7", T0, [EvidenceRef(media_type="image/jpeg", name="frame-0001.jpg",
                                         content=JPEG),
                             EvidenceRef(media_type="application/json", name="scores.json",
                                         content=b'{"occlusion": 0.91}')], state="update")

    async def fix() -> None:
        pool = await open_pool(fresh_db, min_size=1, max_size=2)
        try:
            store = await EvidenceStore.open(pool, settings)
            for c in (first, other, update):  # another clue's item sits between this one's
                await store.add(c)
        finally:
            await pool.close()

    asyncio.run(fix())
    for c in (first, update, other):
        insert_clue(fresh_db, c)
    with psycopg.connect(fresh_db) as conn:  # routing over the registered demo zones and rules
        import_folder(conn, ROOT / "samples" / "registry", default_owner="center",
                      actor=Actor("test", "center"))
    monkeypatch.setenv("OFFSITE_DATABASE_URL", fresh_db)
    monkeypatch.setenv("OFFSITE_STATE_DIR", str(state))
    monkeypatch.setenv("OFFSITE_EVIDENCE_MEDIA", "folder")
    get_settings.cache_clear()
    yield first.clue_id, state
    get_settings.cache_clear()


def test_export_bundle_checks_out(case, tmp_path: Path) -> None:
    clue_id, state = case
    bundle = tmp_path / "case.zip"
    result = CliRunner().invoke(app, ["export", clue_id, "--out", str(bundle)])
    assert result.exit_code == 0, result.output
    assert "2 evidence item(s), 1 chain link(s)" in result.output

    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        files = {n: zf.read(n) for n in zf.namelist()}
    assert manifest["clue"]["clue_id"] == clue_id and manifest["location"] == POINT
    assert [e["state"] for e in manifest["timeline"]] == ["open", "update"]
    assert "error" not in manifest["routing"]
    assert manifest["routing"]["jurisdiction"]["id"] == "cn-321202"
    assert manifest["routing"]["department"].startswith("321202-")
    items = manifest["items"]
    assert sorted(i["record"]["name"] for i in items) == ["frame-0001.jpg", "scores.json"]
    assert [r["record"]["seq"] for r in manifest["chain_links"]] == [2]
    assert "content" not in json.dumps(manifest["chain_links"])  # other case: metadata only

    signer = EvidenceSigner.load_or_create(state)
    key = load_pem_public_key(files["public_key.pem"])
    assert files["public_key.pem"].decode() == signer.public_pem()
    assert manifest["public_keys"][0]["key_id"] == signer.key_id
    for item in items:
        rec = item["record"]
        assert hashlib.sha256(files[item["file"]]).hexdigest() == rec["sha256"]
        canon = json.dumps(rec, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode()
        assert hashlib.sha256(canon).hexdigest() == item["record_hash"]
        key.verify(bytes.fromhex(item["signature"]),
                   b"offsite-evidence-v1:" + bytes.fromhex(item["record_hash"]))

    report = files["report.html"].decode()
    for item in items:
        rec = item["record"]
        assert rec["name"] in report and rec["sha256"] in report
        assert item["signature"] in report and f"seq {rec['seq']}" in report
    jpeg_file = next(i["file"] for i in items if i["record"]["name"] == "frame-0001.jpg")
    assert f'<img src="{jpeg_file}"' in report
    assert "sha256sum" in report and "openssl pkeyutl -verify" in report

    assert verify_bundle(bundle).ok
    assert verify_bundle(bundle, signer.public_hex()).ok
    ok = CliRunner().invoke(app, ["verify", str(bundle)])
    assert ok.exit_code == 0 and "OK: 3 record(s) checked" in ok.output

    # the standalone script and openssl, as a department would run them
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(unpacked)
    run = subprocess.run([sys.executable, "verify_bundle.py"], cwd=unpacked,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "OK 3 record(s)" in run.stdout, run.stdout + run.stderr
    if shutil.which("openssl") and shutil.which("xxd"):
        item = items[0]
        (unpacked / "msg.bin").write_bytes(b"offsite-evidence-v1:"
                                           + bytes.fromhex(item["record_hash"]))
        (unpacked / "sig.bin").write_bytes(bytes.fromhex(item["signature"]))
        ossl = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey",
                               "public_key.pem", "-rawin", "-in", "msg.bin", "-sigfile",
                               "sig.bin"], cwd=unpacked, capture_output=True, text=True)
        assert ossl.returncode == 0 and "Verified Successfully" in ossl.stdout


def rewrite(bundle: Path, out: Path, change) -> None:
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        manifest = json.loads(src.read("manifest.json"))
        files = {n: src.read(n) for n in src.namelist() if n != "manifest.json"}
        change(manifest, files)
        dst.writestr("manifest.json", json.dumps(manifest))
        for n, data in files.items():
            dst.writestr(n, data)


def test_tampered_bundle_fails(case, tmp_path: Path) -> None:
    clue_id, _ = case
    bundle = tmp_path / "case.zip"
    assert CliRunner().invoke(app, ["export", clue_id, "--out", str(bundle)]).exit_code == 0
    manifest = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))
    jpeg = next(i for i in manifest["items"] if i["record"]["media_type"] == "image/jpeg")

    def swap_picture(m, files):
        files[jpeg["file"]] = b"\xff\xd8 another picture"

    def edit_params(m, files):
        m["items"][0]["record"]["params"] = {"threshold": 0.05}

    def drop_link(m, files):
        m["chain_links"] = []

    for name, change, word in [("pic", swap_picture, "content_modified"),
                               ("params", edit_params, "metadata_modified"),
                               ("link", drop_link, "deleted")]:
        bad = tmp_path / f"{name}.zip"
        rewrite(bundle, bad, change)
        report = verify_bundle(bad)
        assert not report.ok and any(word in p for p in report.problems), (name, report)
        out = CliRunner().invoke(app, ["verify", str(bad)])
        assert out.exit_code == 1 and word in out.output
    # a key other than the issuer's: nothing verifies
    stranger = EvidenceSigner.load_or_create(tmp_path / "stranger")
    assert not verify_bundle(bundle, stranger.public_hex()).ok


def test_export_unknown_clue(case, tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["export", "video:nope", "--out", str(tmp_path / "x.zip")])
    assert out.exit_code == 2 and not (tmp_path / "x.zip").exists()
