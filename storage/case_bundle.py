"""Case referral bundles: one clue, its history and its evidence, checkable without our systems.

A bundle is a zip with

* ``manifest.json``: the clue, its timeline (``clue_events``), location, its routing (the
  route stored when the clue was routed, once, at the clue exit: never computed again
  here), every evidence item (its signed record: hash, chain position, signature) and the
  chain records linking the items of one source (metadata only, no content), the public
  keys, and the sha256 of every other file (``files``);
* ``manifest.sig``: the sha256 of ``manifest.json`` and an Ed25519 signature over it by
  the evidence key, so the clue, its routing and the list of items are the issuer's, and
  ``report.html`` and ``verify_bundle.py`` are the ones the issuer shipped;
* ``media/``: each item's bytes, named by hash prefix and original name;
* ``public_key.pem``: the Ed25519 key that signed the records and the manifest;
* ``report.html``: a readable summary (``storage.case_report``, from a template);
* ``verify_bundle.py``: the check in a page of Python (``storage/bundle_verify_script.py``,
  needs only ``cryptography``).

``storage.case_verify`` checks a bundle with nothing but itself or a key given by hand.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from cryptography.hazmat.primitives import serialization
from psycopg.rows import dict_row

from storage.case_report import render_report
from storage.evidence_chain import (
    EvidenceRecord,
    EvidenceSigner,
    canonical_json,
    key_id_of,
    load_public_key,
    sha256_hex,
)
from storage.evidence_store import MediaFolder, fetcher, load_records

if TYPE_CHECKING:
    from storage.case_verify import BundleReport

FORMAT = "offsite-case-bundle/2"
SIGN_DOMAIN = "offsite-evidence-v1:"
MANIFEST_DOMAIN = b"offsite-case-manifest-v1:"
VERIFY_SCRIPT = Path(__file__).resolve().parent / "bundle_verify_script.py"
_STORED_ROUTING = ("site", "department", "jurisdiction", "zones")  # clues columns


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _signed(rec: EvidenceRecord) -> dict[str, Any]:
    """A record as shipped: its hashed fields (canonical numbers), hash and signature."""
    return {"record": json.loads(canonical_json(rec.hashed())), "record_hash": rec.record_hash,
            "signature": rec.signature}


def record_from_manifest(entry: Mapping[str, Any]) -> EvidenceRecord:
    fields = dict(entry["record"])
    for name in ("time", "fixed_at"):
        fields[name] = datetime.fromisoformat(str(fields[name]).replace("Z", "+00:00"))
    return EvidenceRecord(**fields, record_hash=entry["record_hash"],
                          signature=entry["signature"])


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._")
    return cleaned[:80] or "item"


def stored_route(clue: Mapping[str, Any] | None,
                 timeline: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The route the clue got when it was routed, as stored; None if it never was.

    The newest event's ``route`` (the clue's own field, set by the clue exit) or
    ``routing`` (the sink's whole route) wins; failing both, the clue row's routing columns.
    """
    for event in reversed(timeline):
        payload = event.get("payload") or {}
        for key in ("route", "routing"):
            if isinstance(payload.get(key), Mapping):
                return dict(payload[key])
    if clue is None or not any(clue.get(k) for k in _STORED_ROUTING):
        return None
    juris = clue.get("jurisdiction")
    dept = clue.get("department")
    return {"site": clue.get("site"), "jurisdiction": {"id": juris} if juris else None,
            "department": dept, "departments": [dept] if dept else [],
            "zones": clue.get("zones") or []}


@dataclass
class ExportResult:
    path: Path
    clue_id: str
    items: int
    links: int
    missing: list[str] = field(default_factory=list)


@dataclass
class CaseData:
    """What a bundle holds, as read from the database (``gather_case``) or made by hand."""

    clue_id: str
    clue: dict[str, Any] | None
    timeline: list[dict[str, Any]]
    items: list[EvidenceRecord]
    links: list[EvidenceRecord]
    anchors: dict[str, dict[str, Any]]
    contents: dict[str, bytes]  # item id -> bytes, for the items whose bytes were found


def gather_case(database_url: str, clue_id: str,
                folder: str | Path | None = None) -> CaseData:
    """Read a clue, its timeline, its evidence (with bytes) and the chain links between."""
    media = MediaFolder(folder) if folder is not None else None
    with psycopg.connect(database_url) as conn:
        cur = conn.cursor(row_factory=dict_row)
        cur.execute("SELECT * FROM clues WHERE clue_id = %s", (clue_id,))  # + later columns
        clue_row = cur.fetchone()
        cur.execute("SELECT time, kind, state, payload FROM clue_events WHERE clue_id = %s"
                    " ORDER BY time, state", (clue_id,))
        timeline = cur.fetchall()
        items = load_records(conn, "clue_id = %s", (clue_id,))
        if clue_row is None and not items:
            raise LookupError(f"no clue {clue_id!r} and no evidence for it")
        links: list[EvidenceRecord] = []
        anchors: dict[str, dict[str, Any]] = {}
        for source in sorted({r.source for r in items}):
            seqs = [r.seq for r in items if r.source == source]
            lo, hi = min(seqs), max(seqs)
            links += load_records(conn, "source = %s AND seq BETWEEN %s AND %s"
                                        " AND clue_id <> %s", (source, lo, hi, clue_id))
            first = min((r for r in items if r.source == source), key=lambda r: r.seq)
            anchors[source] = {"seq": first.seq - 1, "record_hash": first.prev_hash}
        fetch = fetcher(media, conn)
        contents: dict[str, bytes] = {}
        for rec in items:
            content = rec.content
            if content is None and media is not None and rec.uri:
                path = media.resolve(rec.uri)
                content = path.read_bytes() if path is not None and path.exists() else None
            if content is None:
                content = fetch(rec.sha256)
            if content is not None:
                contents[rec.id] = content
    return CaseData(clue_id, _json_value(dict(clue_row)) if clue_row else None,
                    [_json_value(dict(e)) for e in timeline], items, links, anchors, contents)


def export_case(database_url: str, clue_id: str, out: str | Path, *, signer: EvidenceSigner,
                folder: str | Path | None = None,
                trusted_keys: list[Any] | None = None) -> ExportResult:
    """Write the signed bundle for ``clue_id``; LookupError if neither clue nor evidence exists.

    ``signer`` (the state folder's evidence key) signs the manifest. The bundle lists the
    signer's key and ``trusted_keys`` (pinned ones) that signed its records; a key that
    only the ``evidence_keys`` table knows is left out, so its records fail verification.
    """
    return write_bundle(gather_case(database_url, clue_id, folder), out, signer=signer,
                        trusted_keys=trusted_keys)


def write_bundle(case: CaseData, out: str | Path, *, signer: EvidenceSigner,
                 trusted_keys: list[Any] | None = None) -> ExportResult:
    """Write ``case`` as a signed bundle (pure: no database)."""
    clue_id, clue, events = case.clue_id, case.clue, case.timeline
    items, links, anchors = case.items, case.links, case.anchors
    files: dict[str, bytes] = {}
    entries, missing = [], []
    for rec in items:
        entry: dict[str, Any] = {"file": None, "size": None, **_signed(rec)}
        content = case.contents.get(rec.id)
        if content is None:
            missing.append(rec.id)
        else:
            name = f"media/{rec.sha256[:16]}-{_safe_name(rec.name)}"
            files[name] = content
            entry.update(file=name, size=len(content))
        entries.append(entry)
    trusted = {key_id_of(k): k for k in map(load_public_key, [*(trusted_keys or []),
                                                               signer.public_key])}
    used = sorted({r.key_id for r in items + links} & set(trusted)) or [signer.key_id]
    if signer.key_id not in used:
        used.append(signer.key_id)
    keys = [_key_entry(k, trusted[k]) for k in used if k != signer.key_id]
    keys.append(_key_entry(signer.key_id, signer.public_key))  # the signer's last
    manifest = {
        "format": FORMAT,
        "exported_at": _json_value(datetime.now(UTC)),
        "clue_id": clue_id,
        "clue": clue,
        "location": clue.get("location") if clue else None,
        "routing": stored_route(clue, events),
        "timeline": events,
        "public_keys": keys,
        "signature_scheme": {
            "record_hash": "sha256 of the record's canonical JSON (sorted keys, no spaces, "
                           "UTF-8, integral numbers as integers)",
            "signature": f"Ed25519 over the bytes '{SIGN_DOMAIN}' + the 32 raw bytes of "
                         "record_hash, hex-encoded",
            "chain": "per source: seq counts 1, 2, 3...; prev_hash is the record_hash of seq-1",
            "manifest": f"manifest.sig: Ed25519 over the bytes '{MANIFEST_DOMAIN.decode()}' + "
                        "the 32 raw bytes of the sha256 of manifest.json",
        },
        "anchors": anchors,
        "items": entries,
        "chain_links": [_signed(r) for r in links],
    }
    files["report.html"] = render_report(manifest, SIGN_DOMAIN).encode("utf-8")
    files["verify_bundle.py"] = VERIFY_SCRIPT.read_bytes()
    files["public_key.pem"] = keys[-1]["public_key_pem"].encode()
    manifest["files"] = {n: {"sha256": sha256_hex(files[n]), "size": len(files[n])}
                         for n in ("report.html", "verify_bundle.py", "public_key.pem")}
    body = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    digest = sha256_hex(body)
    sig = {"algorithm": "ed25519", "key_id": signer.key_id, "manifest_sha256": digest,
           "signature": signer.sign_digest(MANIFEST_DOMAIN, digest)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", body)
        zf.writestr("manifest.sig", json.dumps(sig, indent=2) + "\n")
        for name, content in files.items():
            zf.writestr(name, content)
    return ExportResult(out, clue_id, len(entries), len(links), missing)


def _key_entry(key_id: str, key: Any) -> dict[str, str]:
    return {"key_id": key_id, "algorithm": "ed25519",
            "public_key_hex": key.public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw).hex(),
            "public_key_pem": key.public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo
                                               ).decode()}


def bundle_digest(path: str | Path) -> str:
    """sha256 of the whole zip, to quote in a referral letter."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(path: str | Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as zf:
        return json.loads(io.TextIOWrapper(zf.open("manifest.json"), encoding="utf-8").read())


def verify_bundle(path: str | Path, public_key: Any = None) -> BundleReport:
    """``storage.case_verify.verify_bundle``, kept here for the callers of this module."""
    from storage.case_verify import verify_bundle as verify

    return verify(path, public_key)
