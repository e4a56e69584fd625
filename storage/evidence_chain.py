"""Evidence fixing and verification: content addressing, per-source hash chains, Ed25519.

Pure code, no database: the repository layer keeps records in the ``evidence`` table
(migration 002) and calls these functions, and ``offsite evidence verify`` runs the same
verifier on an exported bundle, so a department can check evidence without our database.

Why each piece:

* content is addressed by sha256, so the record pins the exact bytes wherever they live
  (inline ``content`` or an object at ``uri``);
* each record holds its predecessor's hash and a per-source ``seq``, so deleting, inserting
  or moving a record breaks the chain at a visible place;
* the record hash is over a canonical JSON of every field that means something (content
  hash included; storage location ``uri`` excluded so content can be moved), and numbers
  are canonicalised so values survive a round trip through ``jsonb``;
* an Ed25519 signature over the record hash makes recomputing the chain after an edit
  useless without the private key, which never leaves the state folder.

Appending (the DB layer): in one transaction take ``pg_advisory_xact_lock`` on the source,
read the head (``ORDER BY seq DESC LIMIT 1``), skip if ``id`` already exists (re-sent
evidence), ``seal`` with that head, insert. The lock is what keeps ``seq`` unique per
source, since a time-partitioned table cannot enforce a unique key without ``time``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS = "0" * 64
KEY_FILE = "evidence_ed25519.pem"
_SIGN_DOMAIN = b"offsite-evidence-v1:"  # a signature here can never pass as one elsewhere
# Every field the record hash covers; ``record_hash``, ``signature``, ``uri`` and the
# content bytes are outside it (the content is covered through ``sha256``).
HASHED_FIELDS = ("id", "source", "seq", "time", "fixed_at", "clue_id", "sha256", "media_type",
                 "name", "detector", "detector_version", "params", "prev_hash", "key_id")

Problem = Literal["content_modified", "content_missing", "metadata_modified", "bad_signature",
                  "deleted", "reordered", "duplicate_seq"]


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def item_id(source: str, clue_id: str, name: str, sha256: str) -> str:
    """Natural key of an evidence item: the same bytes re-sent for the same clue are one item."""
    return sha256_hex(canonical_json([source, clue_id, name, sha256]))[:32]


def _canon(value: Any) -> Any:
    # jsonb keeps numbers as decimals: 1.0 comes back as 1.0 but 1e20 comes back as an
    # integer; integral floats are written as their exact decimal integer so a record read
    # back from PostgreSQL hashes to the same bytes as the one that was signed
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number {value!r} cannot be fixed as evidence")
        return int(Decimal(repr(value))) if value.is_integer() else value
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("evidence params need string keys")
        return {k: _canon(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not JSON; convert it before fixing evidence")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, canonical numbers: one byte string per value."""
    return json.dumps(_canon(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


def timestamp(moment: datetime) -> str:
    """UTC, microseconds (PostgreSQL's precision), so times survive a timestamptz round trip."""
    if moment.tzinfo is None:
        raise ValueError("evidence times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class EvidenceRecord:
    """One row of the ``evidence`` table; field names are the column names."""

    id: str
    source: str
    seq: int
    time: datetime
    fixed_at: datetime
    clue_id: str
    sha256: str
    media_type: str
    name: str
    detector: str
    detector_version: str
    params: dict[str, Any]
    prev_hash: str
    key_id: str
    record_hash: str
    signature: str
    uri: str | None = None
    content: bytes | None = field(default=None, repr=False)

    def hashed(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in HASHED_FIELDS}
        values["time"] = timestamp(self.time)
        values["fixed_at"] = timestamp(self.fixed_at)
        return values

    def compute_hash(self) -> str:
        return sha256_hex(canonical_json(self.hashed()))

    def row(self) -> dict[str, Any]:
        """Column -> value, for the repository layer's INSERT."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ChainHead:
    """Where a source's chain ends: the next record gets ``seq + 1`` and ``prev_hash = hash``."""

    source: str
    seq: int = 0
    record_hash: str = GENESIS

    @classmethod
    def of(cls, record: EvidenceRecord) -> ChainHead:
        return cls(record.source, record.seq, record.record_hash)


def key_id_of(public: Ed25519PublicKey) -> str:
    return sha256_hex(public.public_bytes(serialization.Encoding.Raw,
                                          serialization.PublicFormat.Raw))[:16]


def load_public_key(key: Ed25519PublicKey | str | bytes) -> Ed25519PublicKey:
    """A public key from PEM text, raw hex (as in ``evidence_keys``), raw bytes or as is."""
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, str) and "BEGIN PUBLIC KEY" not in key:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.strip()))
    raw = key.encode() if isinstance(key, str) else key
    if raw.startswith(b"-----"):
        loaded = serialization.load_pem_public_key(raw)
        if not isinstance(loaded, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return loaded
    return Ed25519PublicKey.from_public_bytes(raw)


class EvidenceSigner:
    """The state folder's Ed25519 key: made on first use, private file mode 0600."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)

    @classmethod
    def load_or_create(cls, state_dir: str | Path) -> EvidenceSigner:
        """Load ``<state_dir>/evidence_ed25519.pem``, creating it if absent.

        Two processes starting at once must end up with the same key, so the new key is
        written to a private temporary file and hard-linked into place, which fails if
        another process won the race; the loser then loads the winner's key.
        """
        folder = Path(state_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / KEY_FILE
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption())
            fd, tmp_name = tempfile.mkstemp(prefix=f".{KEY_FILE}.", dir=folder)
            tmp = Path(tmp_name)
            try:
                os.fchmod(fd, 0o600)  # whatever the umask says
                os.write(fd, pem)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise PermissionError(f"{path} is readable by others (mode {mode:o}); "
                                  "chmod 600 it before it signs evidence")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return cls(key)

    def public_pem(self) -> str:
        return self.public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo
                                            ).decode()

    def public_hex(self) -> str:
        return self.public_key.public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw).hex()

    def sign(self, record_hash: str) -> str:
        return self._key.sign(_SIGN_DOMAIN + bytes.fromhex(record_hash)).hex()

    def sign_digest(self, domain: bytes, digest: str) -> str:
        """Ed25519 over ``domain`` + a sha256 digest: other signed things (case manifests)."""
        return self._key.sign(domain + bytes.fromhex(digest)).hex()


def seal(*, source: str, clue_id: str, time: datetime, media_type: str, name: str,
         head: ChainHead | None, signer: EvidenceSigner, content: bytes | None = None,
         sha256: str | None = None, uri: str | None = None, detector: str = "",
         detector_version: str = "", params: Mapping[str, Any] | None = None,
         fixed_at: datetime | None = None, keep_content: bool = True) -> EvidenceRecord:
    """Fix one item: hash it, append it after ``head`` (None: a new chain), sign it.

    Either ``content`` (hashed here) or ``sha256`` of content stored elsewhere is needed;
    both must agree when both are given.
    """
    if content is not None:
        digest = sha256_hex(content)
        if sha256 is not None and sha256.lower() != digest:
            raise ValueError(f"evidence {name!r}: given sha256 does not match its content")
    elif sha256 is not None and len(sha256) == 64:
        digest = sha256.lower()
    else:
        raise ValueError(f"evidence {name!r}: needs content or a sha256")
    if time.tzinfo is None or (fixed_at is not None and fixed_at.tzinfo is None):
        raise ValueError("evidence times must be timezone-aware")
    head = head or ChainHead(source)
    if head.source != source:
        raise ValueError(f"head of chain {head.source!r} used to append to {source!r}")
    fixed = (fixed_at or datetime.now(UTC)).astimezone(UTC)
    base = EvidenceRecord(
        id=item_id(source, clue_id, name, digest), source=source, seq=head.seq + 1,
        time=time.astimezone(UTC), fixed_at=fixed,
        clue_id=clue_id, sha256=digest, media_type=media_type, name=name, detector=detector,
        detector_version=detector_version, params=json.loads(canonical_json(params or {})),
        prev_hash=head.record_hash, key_id=signer.key_id, record_hash="", signature="",
        uri=uri, content=content if keep_content else None)
    record_hash = base.compute_hash()
    return _replace(base, record_hash=record_hash, signature=signer.sign(record_hash))


def seal_evidence(evidence: Any, head: ChainHead | None, signer: EvidenceSigner,
                  *, uri: str | None = None, fixed_at: datetime | None = None) -> EvidenceRecord:
    """Fix a ``contract.records.Evidence``; an item with a sha256 and no bytes is by reference."""
    item = evidence.item
    by_ref = not item.content and item.sha256 is not None
    return seal(source=evidence.source, clue_id=evidence.clue_id, time=evidence.time,
                media_type=item.media_type, name=item.name, head=head, signer=signer,
                content=None if by_ref else item.content, sha256=item.sha256, uri=uri,
                detector=evidence.detector, detector_version=evidence.detector_version,
                params=evidence.params, fixed_at=fixed_at)


def _replace(record: EvidenceRecord, **changes: Any) -> EvidenceRecord:
    return EvidenceRecord(**{**record.row(), **changes})


@dataclass(frozen=True)
class Issue:
    """One thing wrong: which record (None when only missing records are known), what, why."""

    record_id: str | None
    source: str
    seq: int | None
    problem: Problem
    detail: str


@dataclass
class VerifyReport:
    """Every issue found, and each source's last record (an anchor for the next check)."""

    checked: int = 0
    issues: list[Issue] = field(default_factory=list)
    heads: dict[str, ChainHead] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.issues

    def problems(self, record_id: str) -> set[str]:
        return {i.problem for i in self.issues if i.record_id == record_id}

    def by_record(self) -> dict[str | None, list[Issue]]:
        out: dict[str | None, list[Issue]] = {}
        for issue in self.issues:
            out.setdefault(issue.record_id, []).append(issue)
        return out


def verify_records(records: Iterable[EvidenceRecord],
                   fetch: Callable[[str], bytes | None] | None,
                   public_keys: Iterable[Ed25519PublicKey | str | bytes], *,
                   anchors: Mapping[str, ChainHead] | None = None,
                   expected_heads: Mapping[str, ChainHead] | None = None,
                   require_content: bool = True) -> VerifyReport:
    """Check records as stored or exported, in the order given; report everything wrong.

    ``fetch(sha256)`` returns content kept outside the record (None if it cannot).
    ``anchors`` are trusted heads just before the first record of a source (to check a
    window of a chain); without one a chain must start at seq 1 after ``GENESIS``.
    ``expected_heads`` are heads known from elsewhere (the last signed count): a chain that
    ends before its expected head had its tail deleted. With ``require_content=False``,
    records shipped without content (kept only to link a case's items) are not an issue.
    """
    keys = {key_id_of(k): k for k in map(load_public_key, public_keys)}
    report = VerifyReport()
    chains: dict[str, list[EvidenceRecord]] = {}
    top: dict[str, EvidenceRecord] = {}
    for rec in records:
        report.checked += 1
        report.issues.extend(_check_record(rec, fetch, keys, require_content))
        seen = top.get(rec.source)
        if seen is not None and rec.seq < seen.seq:
            report.issues.append(Issue(rec.id, rec.source, rec.seq, "reordered",
                                       f"seq {rec.seq} stored after {seen.id} (seq {seen.seq})"))
        else:
            top[rec.source] = rec
        chains.setdefault(rec.source, []).append(rec)
    anchors = anchors or {}
    for source, chain in chains.items():
        report.issues.extend(_check_links(source, chain, anchors.get(source, ChainHead(source))))
        last = max(chain, key=lambda r: r.seq)
        report.heads[source] = ChainHead.of(last)
    for source, want in (expected_heads or {}).items():
        got = report.heads.get(source, anchors.get(source, ChainHead(source)))
        if got.seq < want.seq:
            last_id = top[source].id if source in top else None
            report.issues.append(Issue(last_id, source, got.seq, "deleted",
                                       f"{_span(got.seq + 1, want.seq)} missing at the end"))
        elif got.seq == want.seq and got.record_hash != want.record_hash:
            report.issues.append(Issue(top[source].id if source in top else None, source,
                                       got.seq, "metadata_modified",
                                       "last record differs from the expected head"))
    return report


def _check_record(rec: EvidenceRecord, fetch: Callable[[str], bytes | None] | None,
                  keys: Mapping[str, Ed25519PublicKey], require_content: bool) -> list[Issue]:
    out: list[Issue] = []

    def issue(problem: Problem, detail: str) -> None:
        out.append(Issue(rec.id, rec.source, rec.seq, problem, detail))

    try:
        recomputed = rec.compute_hash()
    except (TypeError, ValueError) as exc:
        recomputed = f"unhashable: {exc}"
    if recomputed != rec.record_hash:
        issue("metadata_modified", "fields no longer hash to the record hash")
    key = keys.get(rec.key_id)
    if key is None:
        issue("bad_signature", f"signed with unknown key {rec.key_id!r}")
    else:
        try:
            key.verify(bytes.fromhex(rec.signature), _SIGN_DOMAIN + bytes.fromhex(rec.record_hash))
        except (InvalidSignature, ValueError):
            issue("bad_signature", f"signature does not verify with key {rec.key_id}")
    content = rec.content if rec.content is not None else (fetch(rec.sha256) if fetch else None)
    if content is None:
        if require_content:
            issue("content_missing", f"no content for sha256 {rec.sha256}")
    elif sha256_hex(content) != rec.sha256:
        issue("content_modified", f"content hashes to {sha256_hex(content)}, "
                                  f"record says {rec.sha256}")
    return out


def _check_links(source: str, chain: list[EvidenceRecord], anchor: ChainHead) -> list[Issue]:
    out: list[Issue] = []
    by_hash = {r.record_hash: r for r in chain}
    ordered = sorted(chain, key=lambda r: r.seq)
    prev_seq, prev_hash, prev_id = anchor.seq, anchor.record_hash, None
    for rec in ordered:
        if rec.seq == prev_seq and prev_id is not None:
            out.append(Issue(rec.id, source, rec.seq, "duplicate_seq",
                             f"seq {rec.seq} also used by {prev_id}"))
            continue
        if rec.prev_hash != prev_hash:
            linked = by_hash.get(rec.prev_hash)
            if linked is not None and linked is not rec:
                out.append(Issue(rec.id, source, rec.seq, "reordered",
                                 f"chained after {linked.id} (seq {linked.seq}) but sits at "
                                 f"seq {rec.seq}"))
            elif rec.seq > prev_seq + 1:
                out.append(Issue(rec.id, source, rec.seq, "deleted",
                                 f"{_span(prev_seq + 1, rec.seq - 1)} missing before this"))
            else:
                out.append(Issue(rec.id, source, rec.seq, "deleted",
                                 "predecessor replaced or removed: previous hash not found"))
        elif rec.seq != prev_seq + 1:
            out.append(Issue(rec.id, source, rec.seq, "metadata_modified",
                             f"seq {rec.seq} follows seq {prev_seq} directly in the chain"))
        prev_seq, prev_hash, prev_id = rec.seq, rec.record_hash, rec.id
    return out


def _span(lo: int, hi: int) -> str:
    return f"seq {lo}" if lo == hi else f"seq {lo}..{hi}"
