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
from geo.routing import Router
from offsite.cmd_case import app
from storage.case_bundle import verify_bundle
from storage.db import open_pool
from storage.evidence_chain import EvidenceSigner
from storage.evidence_store import EvidenceStore

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2016, 1, 1, 0, 0, tzinfo=UTC)
JPEG = b"\xff\xd8\xff\xe0 occluded frame \xff\xd9"
# a point inside the demo zones, so routing has something to say
POINT = {"type": "Point", "coordinates": [119.938, 32.4575]}


def clue(camera: str, start: datetime, items: list[EvidenceRef], state: str = "open") -> Clue:
    return Clue(modality="video", kind="occlusion", rule="tamper/occlusion", subject=camera,
                state=state, start=start, time=start + timedelta(minutes=len(items)),
                location=POINT, summary=f"camera {camera} covered", detector="video.tamper",
                detector_version="0.3", params={"threshold": 0.35}, evidence=items,
                metrics={"value": 0.91})


def insert_clue(url: str, c: Clue) -> None:
    """As the clue exit and the sink store it: routed once, the route kept with the clue."""
    c = c.model_copy(update={"route": c.route or Router.demo().route_clue(c).to_dict()})
    route = c.route
    assert route is not None
    with psycopg.connect(url) as conn:
        conn.execute(
            'INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,'
            ' "end", confidence, location, metrics, summary, detector, site, department,'
            ' jurisdiction, zones) VALUES'
            ' (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)'
            ' ON CONFLICT (clue_id) DO UPDATE SET state = EXCLUDED.state, time = EXCLUDED.time',
            (c.clue_id, c.modality, c.kind, c.rule, c.subject, c.state, c.start, c.time, c.end,
             c.confidence, Jsonb(c.location), Jsonb(c.metrics), c.summary, c.detector,
             route["site"], route["department"],
             route["jurisdiction"]["id"] if route["jurisdiction"] else None,
             Jsonb(route["zones"])))
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
    assert manifest["routing"] == manifest["timeline"][-1]["payload"]["route"]  # as stored
    assert manifest["routing"]["department"] == manifest["clue"]["department"]
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
    assert manifest["routing"]["department"] in report
    # the manifest is signed, and fixes the report, the script and the key
    sig = json.loads(files["manifest.sig"])
    digest = hashlib.sha256(files["manifest.json"]).hexdigest()
    assert sig["manifest_sha256"] == digest and sig["key_id"] == signer.key_id
    key.verify(bytes.fromhex(sig["signature"]),
               b"offsite-case-manifest-v1:" + bytes.fromhex(digest))
    for name in ("report.html", "verify_bundle.py", "public_key.pem"):
        assert manifest["files"][name]["sha256"] == hashlib.sha256(files[name]).hexdigest()
    assert files["verify_bundle.py"] == (ROOT / "storage" / "bundle_verify_script.py").read_bytes()

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
        dst.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
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


def exported(clue_id: str, tmp_path: Path) -> tuple[Path, dict]:
    bundle = tmp_path / "case.zip"
    result = CliRunner().invoke(app, ["export", clue_id, "--out", str(bundle)])
    assert result.exit_code == 0, result.output
    return bundle, json.loads(zipfile.ZipFile(bundle).read("manifest.json"))


def _drop_item(m, files):
    gone = m["items"].pop()
    files.pop(gone["file"])


TAMPERING = {  # issue 20 case 7: each of these passed `offsite case verify` before
    "clue value": lambda m, f: m["clue"]["metrics"].update(value=0.05),
    "clue summary": lambda m, f: m["clue"].update(summary="nothing happened"),
    "department": lambda m, f: (m["clue"].update(department="someone-else"),
                                m["routing"].update(department="someone-else")),
    "location": lambda m, f: (m["clue"].update(location={"type": "Point",
                                                         "coordinates": [120.5, 31.0]}),
                              m.update(location=m["clue"]["location"])),
    "report.html": lambda m, f: f.update({"report.html": f["report.html"].replace(
        b"Case referral", b"Nothing to refer")}),
    "verify script": lambda m, f: f.update({"verify_bundle.py": b"print('OK 3 record(s)')\n"}),
    "dropped item": _drop_item,
    "dropped media file": lambda m, f: f.pop(m["items"][0]["file"]),
    "extra file": lambda m, f: f.update({"media/extra.jpg": b"\xff\xd8 planted"}),
    "unsigned": lambda m, f: f.pop("manifest.sig"),
}


WHY = {"report.html": "file_modified: report.html", "verify script": "file_modified: verify",
       "dropped media file": "content_missing", "extra file": "file_unexpected",
       "unsigned": "manifest.sig missing"}


def test_every_tampering_fails_verify(case, tmp_path: Path) -> None:
    clue_id, _ = case
    bundle, _ = exported(clue_id, tmp_path)
    same = tmp_path / "same.zip"  # rewriting without a change keeps it valid: the test bites
    rewrite(bundle, same, lambda m, f: None)
    assert verify_bundle(same).ok
    for name, change in TAMPERING.items():
        bad = tmp_path / f"{name.replace(' ', '_')}.zip"
        rewrite(bundle, bad, change)
        out = CliRunner().invoke(app, ["verify", str(bad)])
        assert out.exit_code == 1, (name, out.output)
        assert "FAILED" in out.output, (name, out.output)
        why = WHY.get(name, "manifest_modified")
        assert any(ln.startswith("FAIL") and why in ln for ln in out.output.splitlines()), \
            (name, out.output)
        assert not verify_bundle(bad).ok, name
    # the department's own check, the bundled script, sees a changed clue too
    bad = tmp_path / "summary.zip"
    rewrite(bundle, bad, TAMPERING["clue summary"])
    unpacked = tmp_path / "summary"
    with zipfile.ZipFile(bad) as zf:
        zf.extractall(unpacked)
    run = subprocess.run([sys.executable, "verify_bundle.py"], cwd=unpacked,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "manifest" in run.stdout, run.stdout + run.stderr


def test_re_signed_bundle_fails_with_the_issuers_key(case, tmp_path: Path) -> None:
    """Whoever re-signs a changed bundle with a key of their own passes only the bundle's
    own key check, never the issuer's key given out of band."""
    clue_id, state = case
    bundle, _ = exported(clue_id, tmp_path)
    issuer = EvidenceSigner.load_or_create(state)
    pem = tmp_path / "issuer.pem"
    pem.write_text(issuer.public_pem())
    assert CliRunner().invoke(app, ["verify", str(bundle), "--public-key", str(pem)]
                              ).exit_code == 0
    forger = EvidenceSigner.load_or_create(tmp_path / "forger")
    forged = tmp_path / "forged.zip"

    def re_sign(m, files):
        m["clue"]["summary"] = "forged"
        m["public_keys"].append({"key_id": forger.key_id, "algorithm": "ed25519",
                                 "public_key_hex": forger.public_hex(),
                                 "public_key_pem": forger.public_pem()})
        files["public_key.pem"] = forger.public_pem().encode()
        m["files"]["public_key.pem"]["sha256"] = hashlib.sha256(files["public_key.pem"]
                                                                ).hexdigest()
        body = (json.dumps(m, indent=2, ensure_ascii=False) + "\n").encode()
        digest = hashlib.sha256(body).hexdigest()
        files["manifest.sig"] = (json.dumps({
            "algorithm": "ed25519", "key_id": forger.key_id, "manifest_sha256": digest,
            "signature": forger.sign_digest(b"offsite-case-manifest-v1:", digest)}, indent=2)
            + "\n").encode()

    rewrite(bundle, forged, re_sign)
    assert verify_bundle(forged).ok  # consistent in itself, under the forger's own key...
    out = CliRunner().invoke(app, ["verify", str(forged), "--public-key", str(pem)])
    assert out.exit_code == 1 and "not the trusted key" in out.output, out.output


@pytest.mark.parametrize("damage", ["truncated", "garbage", "crc", "empty"])
def test_corrupt_zip_fails_cleanly(case, tmp_path: Path, damage: str) -> None:
    clue_id, _ = case
    bundle, _ = exported(clue_id, tmp_path)
    data = bundle.read_bytes()
    bad = tmp_path / "bad.zip"
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        bad.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    elif damage == "empty":
        bad.write_bytes(b"")
    else:  # flip bytes inside the first member's compressed data: a CRC / inflate error
        start = data.index(b"manifest.json") + len("manifest.json") + 10
        bad.write_bytes(data[:start] + bytes(b ^ 0x5A for b in data[start:start + 64])
                        + data[start + 64:])
    out = CliRunner().invoke(app, ["verify", str(bad)])
    assert out.exit_code == 1, out.output
    assert isinstance(out.exception, SystemExit), out.exception  # no traceback
    assert out.output.startswith("FAIL ") and "Traceback" not in out.output


def test_routing_comes_from_the_stored_route(fresh_db: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Routing happens once: the bundle shows the route stored with the clue, even where
    today's zones would route it elsewhere."""
    route = {"site": "site-x", "jurisdiction": {"id": "J9", "name": "Far county",
                                                 "county": "Far"},
             "department": "dept-stored", "departments": ["dept-stored"], "zones": [],
             "assignments": []}
    c = clue("C9", T0, []).model_copy(update={"route": route})
    insert_clue(fresh_db, c)
    monkeypatch.setenv("OFFSITE_DATABASE_URL", fresh_db)
    monkeypatch.setenv("OFFSITE_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    try:
        bundle, manifest = exported(c.clue_id, tmp_path)
    finally:
        get_settings.cache_clear()
    assert manifest["routing"] == route
    assert "dept-stored" in zipfile.ZipFile(bundle).read("report.html").decode()
    assert verify_bundle(bundle).ok


def test_export_refuses_a_state_folder_without_the_key(case, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    clue_id, _ = case
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("OFFSITE_STATE_DIR", str(elsewhere))
    get_settings.cache_clear()
    out = CliRunner().invoke(app, ["export", clue_id, "--out", str(tmp_path / "x.zip")])
    assert out.exit_code == 2 and "OFFSITE_STATE_DIR" in out.output, out.output
    assert not (elsewhere / "evidence_ed25519.pem").exists()
    assert not (tmp_path / "x.zip").exists()
