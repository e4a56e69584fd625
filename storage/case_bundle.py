"""Case referral bundles: one clue, its history and its evidence, checkable without our systems.

A bundle is a zip with

* ``manifest.json``: the clue, its timeline (``clue_events``), location, zones and routing
  (``routing``: computed now with ``geo.routing``; ``stored_routing``: the clue row's own
  routing columns, when the stream routed it), every evidence item (its signed record:
  hash, chain position, signature) and the chain records linking the items of one source
  (metadata only, no content), the public keys;
* ``media/``: each item's bytes, named by hash prefix and original name;
* ``public_key.pem``: the Ed25519 key that signed the records;
* ``report.html``: a readable summary, pictures inline, and how to verify it by hand;
* ``verify_bundle.py``: the same check in a page of Python (needs only ``cryptography``).

Only the evidence records are signed; the clue's state and timeline are the database's
account of it at export time.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from storage.evidence_chain import (
    ChainHead,
    EvidenceRecord,
    VerifyReport,
    canonical_json,
    key_id_of,
    load_public_key,
    sha256_hex,
    verify_records,
)
from storage.evidence_store import MediaFolder, fetcher, load_records

FORMAT = "offsite-case-bundle/1"
_STORED_ROUTING = ("site", "department", "jurisdiction", "zones")  # clues columns, when there
SIGN_DOMAIN = "offsite-evidence-v1:"


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


@dataclass
class ExportResult:
    path: Path
    clue_id: str
    items: int
    links: int
    missing: list[str] = field(default_factory=list)


def export_case(database_url: str, clue_id: str, out: str | Path, *,
                folder: str | Path | None = None, router: Any = None) -> ExportResult:
    """Write the bundle for ``clue_id``; LookupError if neither the clue nor evidence exists."""
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
        key_ids = sorted({r.key_id for r in items + links})
        keys = conn.execute("SELECT key_id, public_key_hex, public_key_pem FROM evidence_keys"
                            " WHERE key_id = ANY(%s) ORDER BY created_at",
                            (key_ids,)).fetchall()
        fetch = fetcher(media, conn)
        if router is None and clue_row is not None:
            router = _registry_router(conn)
        files: dict[str, bytes] = {}
        entries, missing = [], []
        for rec in items:
            content = rec.content
            if content is None and media is not None and rec.uri:
                path = media.resolve(rec.uri)
                content = path.read_bytes() if path is not None and path.exists() else None
            if content is None:
                content = fetch(rec.sha256)
            entry: dict[str, Any] = {"file": None, "size": None, **_signed(rec)}
            if content is None:
                missing.append(rec.id)
            else:
                name = f"media/{rec.sha256[:16]}-{_safe_name(rec.name)}"
                files[name] = content
                entry.update(file=name, size=len(content))
            entries.append(entry)

    clue: dict[str, Any] | None = _json_value(dict(clue_row)) if clue_row else None
    routing = _route(clue_row, router) if clue_row else None
    manifest = {
        "format": FORMAT,
        "exported_at": _json_value(datetime.now(UTC)),
        "clue_id": clue_id,
        "clue": clue,
        "location": clue.get("location") if clue else None,
        "routing": routing,
        "stored_routing": ({k: clue[k] for k in _STORED_ROUTING if k in clue}
                           if clue and any(k in clue for k in _STORED_ROUTING) else None),
        "timeline": [_json_value(dict(e)) for e in timeline],
        "public_keys": [{"key_id": k, "algorithm": "ed25519", "public_key_hex": h,
                         "public_key_pem": p} for k, h, p in keys],
        "signature_scheme": {
            "record_hash": "sha256 of the record's canonical JSON (sorted keys, no spaces, "
                           "UTF-8, integral numbers as integers)",
            "signature": f"Ed25519 over the bytes '{SIGN_DOMAIN}' + the 32 raw bytes of "
                         "record_hash, hex-encoded",
            "chain": "per source: seq counts 1, 2, 3...; prev_hash is the record_hash of seq-1",
        },
        "anchors": anchors,
        "items": entries,
        "chain_links": [_signed(r) for r in links],
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=False)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", body + "\n")
        for name, content in files.items():
            zf.writestr(name, content)
        if keys:
            zf.writestr("public_key.pem", keys[-1][2])
        zf.writestr("report.html", render_report(manifest))
        zf.writestr("verify_bundle.py", VERIFY_SCRIPT)
    return ExportResult(out, clue_id, len(entries), len(links), missing)


def _registry_router(conn: psycopg.Connection) -> Any:
    """The router over the registered zones and rules (None, reported later, if unreadable)."""
    from storage.registry import load_router

    try:
        with conn.transaction():  # a savepoint: a failure leaves the connection usable
            return load_router(conn)
    except Exception:  # a registry that fails to load must not stop an evidence export
        return None


def _route(row: Mapping[str, Any], router: Any) -> dict[str, Any] | None:
    from contract.clue import Clue

    try:
        clue = Clue(modality=row["modality"], kind=row["kind"], rule=row["rule"],
                    subject=row["subject"], start=row["start"], time=row["time"],
                    location=row["location"])
        return router.route_clue(clue).to_dict()
    except Exception as exc:  # routing is context for the reader, never a reason to fail
        return {"error": f"not routed: {exc}"}


# ---- checking a bundle on its own ----------------------------------------------------------


@dataclass
class BundleReport:
    ok: bool
    checked: int
    problems: list[str]
    chain: VerifyReport | None = None


def verify_bundle(path: str | Path, public_key: Any = None) -> BundleReport:
    """Check a bundle with nothing but itself (or a key given out of band).

    Every item's file must hash to its record's sha256, every record (items and chain
    links) must hash to its record_hash and carry a valid signature, and the records of
    each source must form an unbroken chain from the first item's predecessor on.
    """
    problems: list[str] = []
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        if "manifest.json" not in names:
            return BundleReport(False, 0, ["manifest.json missing"])
        manifest = json.loads(zf.read("manifest.json"))
        keys = []
        if public_key is not None:  # a key obtained out of band: trust only that one
            keys.append(load_public_key(public_key))
        else:  # the bundle's own keys: checks integrity, not who signed
            if "public_key.pem" not in names:
                return BundleReport(False, 0, ["public_key.pem missing"])
            keys.append(load_public_key(zf.read("public_key.pem")))
            for k in manifest.get("public_keys", []):  # older keys, for older records
                if key_id_of(load_public_key(k["public_key_hex"])) != k["key_id"]:
                    problems.append(f"manifest key {k['key_id']} does not match its key")
                else:
                    keys.append(load_public_key(k["public_key_hex"]))
        records: list[EvidenceRecord] = []
        for n, entry in enumerate(manifest.get("items", []), start=1):
            try:
                rec = record_from_manifest(entry)
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(f"item {n}: unreadable record ({exc})")
                continue
            records.append(rec)
            label = f"item {rec.id} ({rec.name}, source {rec.source}, seq {rec.seq})"
            if rec.clue_id != manifest.get("clue_id"):
                problems.append(f"{label}: belongs to clue {rec.clue_id}, not this case")
            file = entry.get("file")
            if not file or file not in names:
                problems.append(f"{label}: content_missing: file {file!r} not in the bundle")
                continue
            got = sha256_hex(zf.read(file))
            if got != rec.sha256:
                problems.append(f"{label}: content_modified: {file} hashes to {got}, "
                                f"record says {rec.sha256}")
        for entry in manifest.get("chain_links", []):
            try:
                records.append(record_from_manifest(entry))
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(f"chain link unreadable ({exc})")
    anchors = {}
    for source in {r.source for r in records}:
        first = min((r for r in records if r.source == source), key=lambda r: r.seq)
        anchors[source] = ChainHead(source, first.seq - 1, first.prev_hash)
    records.sort(key=lambda r: (r.source, r.seq))
    chain = verify_records(records, None, keys, anchors=anchors, require_content=False)
    for issue in chain.issues:
        problems.append(f"record {issue.record_id} (source {issue.source}, seq {issue.seq}): "
                        f"{issue.problem}: {issue.detail}")
    return BundleReport(not problems, chain.checked, problems, chain)


# ---- the human-readable report --------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return "&mdash;"
    if isinstance(value, dict | list):
        return f"<code>{html.escape(json.dumps(value, ensure_ascii=False))}</code>"
    return html.escape(str(value))


def render_report(manifest: Mapping[str, Any]) -> str:
    e = html.escape
    clue = manifest.get("clue") or {}
    rows = "".join(f"<tr><th>{e(k)}</th><td>{_fmt(clue.get(k))}</td></tr>"
                   for k in ("clue_id", "modality", "kind", "rule", "subject", "state", "start",
                             "time", "end", "confidence", "summary", "detector"))
    timeline = "".join(
        f"<tr><td>{_fmt(ev.get('time'))}</td><td>{_fmt(ev.get('kind'))}</td>"
        f"<td>{_fmt(ev.get('state'))}</td>"
        f"<td>{_fmt((ev.get('payload') or {}).get('summary'))}</td></tr>"
        for ev in manifest.get("timeline", [])) or "<tr><td colspan=4>no events</td></tr>"
    routing = manifest.get("routing") or {}
    zones = "".join(f"<li>{e(str(z.get('name') or z.get('id')))} ({e(str(z.get('kind')))})</li>"
                    for z in routing.get("zones", []))
    route_html = (f"<p>Site: {_fmt(routing.get('site'))}. Department in charge: "
                  f"<b>{_fmt(routing.get('department'))}</b>; involved: "
                  f"{_fmt(', '.join(routing.get('departments', [])))}.</p>"
                  f"<ul>{zones or '<li>no protected zone touched</li>'}</ul>"
                  if routing and "error" not in routing
                  else f"<p>{_fmt(routing.get('error') if routing else 'not routed')}</p>")
    items = []
    for n, item in enumerate(manifest.get("items", []), start=1):
        rec = item["record"]
        file = item.get("file")
        if file and str(rec.get("media_type", "")).startswith("image/"):
            shown = (f'<a href="{e(file)}"><img src="{e(file)}" alt="{e(rec["name"])}" '
                     'style="max-width:100%;max-height:480px"></a>')
        elif file:
            shown = f'<a href="{e(file)}">{e(file)}</a>'
        else:
            shown = "<b>content missing from this bundle</b>"
        items.append(
            f"<section class=item><h3>{n}. {e(rec['name'])} "
            f"<small>({e(rec['media_type'])})</small></h3>{shown}<table>"
            f"<tr><th>item id</th><td><code>{e(rec['id'])}</code></td></tr>"
            f"<tr><th>file</th><td><code>{_fmt(file)}</code> ({_fmt(item.get('size'))} bytes)"
            f"</td></tr>"
            f"<tr><th>sha256</th><td><code>{e(rec['sha256'])}</code></td></tr>"
            f"<tr><th>time / fixed at</th><td>{e(rec['time'])} / {e(rec['fixed_at'])}</td></tr>"
            f"<tr><th>source, chain position</th><td>{e(rec['source'])}, seq {rec['seq']}"
            f"</td></tr>"
            f"<tr><th>previous record hash</th><td><code>{e(rec['prev_hash'])}</code></td></tr>"
            f"<tr><th>record hash</th><td><code>{e(item['record_hash'])}</code></td></tr>"
            f"<tr><th>signature (key {e(rec['key_id'])})</th><td><code class=wrap>"
            f"{e(item['signature'])}</code></td></tr>"
            f"<tr><th>detector</th><td>{_fmt(rec['detector'])} {_fmt(rec['detector_version'])}"
            f" {_fmt(rec['params'])}</td></tr></table></section>")
    first = (manifest.get("items") or [{}])[0]
    sums = "\n".join(f"{it['record']['sha256']}  {it['file']}"
                     for it in manifest.get("items", []) if it.get("file"))
    keys = manifest.get("public_keys") or []
    key_line = (f"key id <code>{e(keys[-1]['key_id'])}</code>, raw public key "
                f"<code>{e(keys[-1]['public_key_hex'])}</code>" if keys else "no key")
    example_hash = first.get("record_hash", "RECORD_HASH")
    example_sig = first.get("signature", "SIGNATURE")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Case {e(str(manifest.get('clue_id')))}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; }}
table {{ border-collapse: collapse; margin: .5rem 0 1rem; }}
th, td {{ border: 1px solid #ccc; padding: .25rem .5rem; text-align: left;
         vertical-align: top; }}
th {{ background: #f4f4f4; }}
code {{ font-size: .85em; word-break: break-all; }}
pre {{ background: #f6f6f6; padding: .75rem; overflow-x: auto; font-size: .85em; }}
section.item {{ border-top: 2px solid #ddd; padding-top: .5rem; }}
</style></head><body>
<h1>Case referral: {e(str(manifest.get('clue_id')))}</h1>
<p>Exported {e(str(manifest.get('exported_at')))}. {len(manifest.get('items', []))}
evidence item(s), each fixed (hashed, chained and signed) when it was collected.</p>
<h2>Clue</h2><table>{rows}</table>
<h2>Location</h2><p>{_fmt(manifest.get('location'))}</p>
<h2>Zones and routing</h2>{route_html}
<h2>Timeline</h2><table><tr><th>time</th><th>kind</th><th>state</th><th>summary</th></tr>
{timeline}</table>
<h2>Evidence</h2>
{''.join(items) or '<p>No evidence items.</p>'}
<h2>How to verify this bundle</h2>
<p>The signing key: {key_line} (also in <code>public_key.pem</code>). Obtain the key's id or
fingerprint from the issuing office through a separate channel and compare it before
trusting any signature.</p>
<ol>
<li><b>Files are the fixed bytes.</b> Unzip the bundle and run
<pre>sha256sum media/*</pre>
Each line must match the item's sha256 above:
<pre>{e(sums)}</pre></li>
<li><b>Records are intact and signed.</b> Every record in <code>manifest.json</code>
(<code>items</code> and <code>chain_links</code>) has a <code>record</code>: its
<code>record_hash</code> is the sha256 of that object as canonical JSON (sorted keys, no
spaces, UTF-8), and its <code>signature</code> is an Ed25519 signature of the bytes
<code>{SIGN_DOMAIN}</code> followed by the 32 raw bytes of the record hash. The record holds
the file's sha256, so a valid signature fixes the file too. With Python and the
<code>cryptography</code> package:
<pre>{e(SNIPPET)}</pre>
The bundle's <code>verify_bundle.py</code> runs this check, plus the file hashes and the
chain, in one go: <code>python3 verify_bundle.py</code>.</li>
<li><b>Or with OpenSSL 3</b>, for one record (here item 1):
<pre>printf '%s' '{SIGN_DOMAIN}' &gt; msg.bin
printf '%s' {e(example_hash)} | xxd -r -p &gt;&gt; msg.bin
printf '%s' {e(example_sig)} | xxd -r -p &gt; sig.bin
openssl pkeyutl -verify -pubin -inkey public_key.pem -rawin -in msg.bin -sigfile sig.bin</pre>
It prints <code>Signature Verified Successfully</code>.</li>
<li><b>Nothing was removed or reordered.</b> Per source, records count up by one
(<code>seq</code>) and each <code>prev_hash</code> is the previous record's
<code>record_hash</code>; records of other cases between this case's items are included in
<code>chain_links</code> (without their content) so the chain can be followed
unbroken.</li>
</ol>
</body></html>
"""


SNIPPET = """import hashlib, json
from cryptography.hazmat.primitives.serialization import load_pem_public_key

manifest = json.load(open("manifest.json", encoding="utf-8"))
key = load_pem_public_key(open("public_key.pem", "rb").read())
for entry in manifest["items"] + manifest["chain_links"]:
    canon = json.dumps(entry["record"], sort_keys=True, separators=(",", ":"),
                       ensure_ascii=False).encode("utf-8")
    assert hashlib.sha256(canon).hexdigest() == entry["record_hash"], entry["record"]["id"]
    key.verify(bytes.fromhex(entry["signature"]),   # raises InvalidSignature if forged
               b"offsite-evidence-v1:" + bytes.fromhex(entry["record_hash"]))
print("all record hashes and signatures check out")"""

VERIFY_SCRIPT = '''"""Check an Offsite case bundle unzipped here: python3 verify_bundle.py

Needs only Python 3 and the ``cryptography`` package. Exits 1 on any problem.
"""
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key

manifest = json.load(open("manifest.json", encoding="utf-8"))
key = load_pem_public_key(open("public_key.pem", "rb").read())
problems = []
for entry in manifest["items"]:
    rec = entry["record"]
    try:
        data = open(entry["file"], "rb").read()
    except (OSError, TypeError):
        problems.append(f"{rec['id']}: file {entry['file']!r} missing")
        continue
    if hashlib.sha256(data).hexdigest() != rec["sha256"]:
        problems.append(f"{rec['id']}: {entry['file']} does not hash to {rec['sha256']}")
chains = {}
for entry in manifest["items"] + manifest["chain_links"]:
    rec = entry["record"]
    canon = json.dumps(rec, sort_keys=True, separators=(",", ":"),
                       ensure_ascii=False).encode("utf-8")
    if hashlib.sha256(canon).hexdigest() != entry["record_hash"]:
        problems.append(f"{rec['id']}: record fields changed (hash mismatch)")
    try:
        key.verify(bytes.fromhex(entry["signature"]),
                   b"offsite-evidence-v1:" + bytes.fromhex(entry["record_hash"]))
    except (InvalidSignature, ValueError):
        problems.append(f"{rec['id']}: bad signature")
    chains.setdefault(rec["source"], []).append((rec["seq"], rec["prev_hash"],
                                                 entry["record_hash"], rec["id"]))
for source, chain in chains.items():
    chain.sort()
    for (seq, _, digest, _), (nseq, nprev, _, nid) in zip(chain, chain[1:]):
        if nseq != seq + 1 or nprev != digest:
            problems.append(f"{nid}: chain of {source} broken between seq {seq} and {nseq}")
for p in problems:
    print("FAIL", p)
n = len(manifest["items"]) + len(manifest["chain_links"])
print("FAILED" if problems else "OK", f"{n} record(s) checked")
sys.exit(1 if problems else 0)
'''


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
