"""Check an Offsite case bundle unzipped here: python3 verify_bundle.py

Needs only Python 3 and the ``cryptography`` package. Exits 1 on any problem.

Shipped in every bundle as ``verify_bundle.py`` (``storage.case_bundle`` copies this file
in; its sha256 is in the signed manifest, so ``offsite case verify`` notices a replaced
script). It checks, with the bundle's ``public_key.pem``:

1. ``manifest.sig``: the Ed25519 signature over ``offsite-case-manifest-v1:`` + the sha256
   of ``manifest.json``, so nothing in the manifest (the clue, its routing, the list of
   items) was changed or dropped;
2. every file the manifest lists (``report.html``, this script, the key) and every item's
   file hashes to what the manifest says;
3. every evidence record hashes to its record hash and carries a valid signature, and the
   records of each source form an unbroken chain.
"""

import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key

MANIFEST_DOMAIN = b"offsite-case-manifest-v1:"
RECORD_DOMAIN = b"offsite-evidence-v1:"


def sha256_file(name):
    with open(name, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def check(problems):
    key = load_pem_public_key(open("public_key.pem", "rb").read())
    raw = open("manifest.json", "rb").read()
    sig = json.load(open("manifest.sig", encoding="utf-8"))
    digest = hashlib.sha256(raw).hexdigest()
    if sig["manifest_sha256"] != digest:
        problems.append(f"manifest.json hashes to {digest}, signature covers "
                        f"{sig['manifest_sha256']}")
    try:
        key.verify(bytes.fromhex(sig["signature"]), MANIFEST_DOMAIN + bytes.fromhex(digest))
    except (InvalidSignature, ValueError):
        problems.append("manifest signature does not verify with public_key.pem")
    manifest = json.loads(raw)
    for name, meta in manifest["files"].items():
        try:
            if sha256_file(name) != meta["sha256"]:
                problems.append(f"{name} does not hash to {meta['sha256']}")
        except OSError:
            problems.append(f"{name} missing")
    for entry in manifest["items"]:
        rec = entry["record"]
        try:
            if sha256_file(entry["file"]) != rec["sha256"]:
                problems.append(f"{rec['id']}: {entry['file']} does not hash to {rec['sha256']}")
        except (OSError, TypeError):
            problems.append(f"{rec['id']}: file {entry['file']!r} missing")
    chains = {}
    for entry in manifest["items"] + manifest["chain_links"]:
        rec = entry["record"]
        canon = json.dumps(rec, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode("utf-8")
        if hashlib.sha256(canon).hexdigest() != entry["record_hash"]:
            problems.append(f"{rec['id']}: record fields changed (hash mismatch)")
        try:
            key.verify(bytes.fromhex(entry["signature"]),
                       RECORD_DOMAIN + bytes.fromhex(entry["record_hash"]))
        except (InvalidSignature, ValueError):
            problems.append(f"{rec['id']}: bad signature")
        chains.setdefault(rec["source"], []).append((rec["seq"], rec["prev_hash"],
                                                     entry["record_hash"], rec["id"]))
    for source, chain in chains.items():
        chain.sort()
        anchor = manifest["anchors"].get(source, {})
        if chain and chain[0][1] != anchor.get("record_hash", chain[0][1]):
            problems.append(f"{chain[0][3]}: does not follow the anchor of {source}")
        for (seq, _, digest_, _), (nseq, nprev, _, nid) in zip(chain, chain[1:]):  # noqa: B905 - any Python 3
            if nseq != seq + 1 or nprev != digest_:
                problems.append(f"{nid}: chain of {source} broken between seq {seq} and {nseq}")
    return len(manifest["items"]) + len(manifest["chain_links"])


def main():
    problems = []
    try:
        n = check(problems)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        problems.append(f"bundle unreadable: {type(exc).__name__}: {exc}")
        n = 0
    for p in problems:
        print("FAIL", p)
    print("FAILED" if problems else "OK", f"{n} record(s) checked")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
