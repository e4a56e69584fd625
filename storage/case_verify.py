"""Checking a case bundle with nothing but itself (or a key obtained out of band).

What must hold, in order:

1. the zip reads and holds ``manifest.json`` and ``manifest.sig``;
2. ``manifest.sig`` covers exactly these manifest bytes and verifies with the trusted key
   (the key given by hand, else the bundle's ``public_key.pem``), so the clue, its
   routing, the timeline and the list of items are the issuer's;
3. every file the manifest lists (``report.html``, ``verify_bundle.py``,
   ``public_key.pem``) and every item's file hashes as the manifest says, and the zip holds
   nothing else;
4. every evidence record hashes to its record hash, is signed by a key the signed manifest
   lists, belongs to this clue, and the records of each source form an unbroken chain.

Any failure, a corrupt zip included, is a problem in the report, never an exception: the
caller prints FAIL lines and exits non-zero.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature

from storage.case_bundle import FORMAT, MANIFEST_DOMAIN, record_from_manifest
from storage.evidence_chain import (
    ChainHead,
    EvidenceRecord,
    VerifyReport,
    key_id_of,
    load_public_key,
    sha256_hex,
    verify_records,
)

MAX_MANIFEST = 64 << 20  # bytes; a manifest is metadata, a larger one is hostile
MAX_MEMBER = 2 << 30
SIG_FIELDS = {"algorithm", "key_id", "manifest_sha256", "signature"}


@dataclass
class BundleReport:
    ok: bool
    checked: int
    problems: list[str]
    chain: VerifyReport | None = None


def verify_bundle(path: str | Path | IO[bytes], public_key: Any = None) -> BundleReport:
    """Check a bundle; a key given here is the only one trusted for the manifest."""
    problems: list[str] = []
    try:
        with zipfile.ZipFile(path) as zf:
            return _verify(zf, public_key, problems)
    except Exception as exc:  # noqa: BLE001 - a hostile file must end as a FAIL line
        return BundleReport(False, 0, [*problems,
                                       f"bundle unreadable: {type(exc).__name__}: {exc}"])


def _read(zf: zipfile.ZipFile, name: str, limit: int = MAX_MEMBER) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ValueError(f"{name} is {info.file_size} bytes, over the limit of {limit}")
    return zf.read(info)


def _verify(zf: zipfile.ZipFile, public_key: Any, problems: list[str]) -> BundleReport:
    names = set(zf.namelist())
    for needed in ("manifest.json", "manifest.sig"):
        if needed not in names:
            return BundleReport(False, 0, [f"{needed} missing: not a signed bundle"])
    raw = _read(zf, "manifest.json", MAX_MANIFEST)
    manifest = json.loads(raw)
    raw_sig = _read(zf, "manifest.sig", 1 << 16)
    sig = json.loads(raw_sig)
    if not isinstance(manifest, dict) or not isinstance(sig, dict):
        return BundleReport(False, 0, ["manifest.json or manifest.sig is not a JSON object"])
    if set(sig) != SIG_FIELDS or sig["algorithm"] != "ed25519" \
            or (json.dumps(sig, indent=2) + "\n").encode() != raw_sig:
        problems.append("manifest_signature: manifest.sig is not as written (fields "
                        f"{sorted(SIG_FIELDS)}, algorithm ed25519)")
    if manifest.get("format") != FORMAT:
        problems.append(f"format {manifest.get('format')!r}, expected {FORMAT}")
    if public_key is not None:  # a key obtained out of band: trust only that one
        signer = load_public_key(public_key)
    elif "public_key.pem" in names:  # the bundle's own key: integrity, not who signed
        signer = load_public_key(_read(zf, "public_key.pem", 1 << 16))
    else:
        return BundleReport(False, 0, ["public_key.pem missing"])
    digest = sha256_hex(raw)
    signed = _manifest_signed(sig, digest, signer, problems)
    keys = [signer]
    if signed:  # the issuer vouches for the keys its manifest lists
        for k in manifest.get("public_keys") or []:
            key = load_public_key(k["public_key_hex"])
            if key_id_of(key) != k["key_id"]:
                problems.append(f"manifest key {k['key_id']} does not match its key")
            else:
                keys.append(key)
    expected = set()
    for name, meta in (manifest.get("files") or {}).items():
        expected.add(name)
        if name not in names:
            problems.append(f"file_missing: {name} listed in the manifest, not in the bundle")
        elif (got := sha256_hex(_read(zf, name))) != meta.get("sha256"):
            problems.append(f"file_modified: {name} hashes to {got}, manifest says "
                            f"{meta.get('sha256')}")
    for needed in ("report.html", "verify_bundle.py", "public_key.pem"):
        if needed not in expected:
            problems.append(f"file_unlisted: the manifest does not fix {needed}")
    records: list[EvidenceRecord] = []
    clue_id = manifest.get("clue_id")
    if (manifest.get("clue") or {}).get("clue_id", clue_id) != clue_id:
        problems.append(f"clue {manifest['clue'].get('clue_id')!r} is not case {clue_id!r}")
    for n, entry in enumerate(manifest.get("items") or [], start=1):
        try:
            rec = record_from_manifest(entry)
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"item {n}: unreadable record ({exc})")
            continue
        records.append(rec)
        label = f"item {rec.id} ({rec.name}, source {rec.source}, seq {rec.seq})"
        if rec.clue_id != clue_id:
            problems.append(f"{label}: belongs to clue {rec.clue_id}, not this case")
        file = entry.get("file")
        expected.add(file)
        if not file or file not in names:
            problems.append(f"{label}: content_missing: file {file!r} not in the bundle")
            continue
        got = sha256_hex(_read(zf, file))
        if got != rec.sha256:
            problems.append(f"{label}: content_modified: {file} hashes to {got}, "
                            f"record says {rec.sha256}")
    for entry in manifest.get("chain_links") or []:
        try:
            records.append(record_from_manifest(entry))
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"chain link unreadable ({exc})")
    for name in sorted(names - expected - {"manifest.json", "manifest.sig"}):
        problems.append(f"file_unexpected: {name} is in the bundle but not in the manifest")
    chain = _check_chain(records, keys, manifest.get("anchors") or {})
    for issue in chain.issues:
        problems.append(f"record {issue.record_id} (source {issue.source}, seq {issue.seq}): "
                        f"{issue.problem}: {issue.detail}")
    return BundleReport(not problems, chain.checked, problems, chain)


def _manifest_signed(sig: dict, digest: str, key: Any, problems: list[str]) -> bool:
    if sig.get("manifest_sha256") != digest:
        problems.append(f"manifest_modified: manifest.json hashes to {digest}, its signature "
                        f"covers {sig.get('manifest_sha256')}")
        return False
    if sig.get("key_id") != key_id_of(key):
        problems.append(f"manifest_signature: signed by key {sig.get('key_id')!r}, not the "
                        f"trusted key {key_id_of(key)}")
        return False
    try:
        key.verify(bytes.fromhex(str(sig.get("signature"))), MANIFEST_DOMAIN
                   + bytes.fromhex(digest))
    except (InvalidSignature, ValueError):
        problems.append(f"manifest_signature: does not verify with key {key_id_of(key)}")
        return False
    return True


def _check_chain(records: list[EvidenceRecord], keys: list[Any],
                 anchors_in: dict[str, Any]) -> VerifyReport:
    anchors = {}
    for source in {r.source for r in records}:
        first = min((r for r in records if r.source == source), key=lambda r: r.seq)
        given = anchors_in.get(source) if isinstance(anchors_in.get(source), dict) else None
        if given is not None:
            anchors[source] = ChainHead(source, int(given["seq"]), str(given["record_hash"]))
        else:
            anchors[source] = ChainHead(source, first.seq - 1, first.prev_hash)
    records.sort(key=lambda r: (r.source, r.seq))
    return verify_records(records, None, keys, anchors=anchors, require_content=False)
