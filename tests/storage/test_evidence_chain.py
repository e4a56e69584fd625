"""Evidence chain: sealing, signing, key handling, and detection of every kind of tampering."""

from __future__ import annotations

import dataclasses
import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.clue import EvidenceRef
from contract.records import Evidence
from storage.evidence_chain import (
    GENESIS,
    HASHED_FIELDS,
    KEY_FILE,
    ChainHead,
    EvidenceRecord,
    EvidenceSigner,
    canonical_json,
    key_id_of,
    load_public_key,
    seal,
    seal_evidence,
    sha256_hex,
    verify_records,
)

T0 = datetime(2016, 1, 1, 8, 0, 0, 123456, tzinfo=timezone(timedelta(hours=8)))


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> EvidenceSigner:
    return EvidenceSigner.load_or_create(tmp_path_factory.mktemp("state"))


def make_chain(signer: EvidenceSigner, n: int = 5, source: str = "station:dongsi",
               start: ChainHead | None = None) -> list[EvidenceRecord]:
    head, out = start, []
    for i in range(n):
        rec = seal(source=source, clue_id=f"env:dongsi:pm25:{i}", time=T0 + timedelta(hours=i),
                   media_type="application/json", name=f"window-{i}.json", head=head,
                   signer=signer, content=f'{{"pm25": {80 + i}}}'.encode(),
                   detector="env.exceedance", detector_version="1.2.0",
                   params={"limit": 75.0, "window_h": 24, "codes": ["a34004"]})
        out.append(rec)
        head = ChainHead.of(rec)
    return out


def verify(records: list[EvidenceRecord], signer: EvidenceSigner, **kw):
    return verify_records(records, None, [signer.public_hex()], **kw)


def edit(rec: EvidenceRecord, **changes) -> EvidenceRecord:
    return dataclasses.replace(rec, **changes)


def resign(rec: EvidenceRecord, signer: EvidenceSigner) -> EvidenceRecord:
    rehashed = edit(rec, record_hash=rec.compute_hash())
    return edit(rehashed, signature=signer.sign(rehashed.record_hash))


def test_sealed_chain_verifies(signer: EvidenceSigner) -> None:
    chain = make_chain(signer)
    assert chain[0].seq == 1 and chain[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.record_hash for a, b in zip(chain, chain[1:], strict=False))
    assert chain[2].sha256 == sha256_hex(b'{"pm25": 82}')
    assert chain[0].time.tzinfo is UTC and chain[0].key_id == signer.key_id
    report = verify(chain, signer)
    assert report.ok and report.checked == 5
    assert report.heads["station:dongsi"] == ChainHead.of(chain[-1])


def test_modified_content(signer: EvidenceSigner) -> None:
    chain = make_chain(signer)
    chain[1] = edit(chain[1], content=b'{"pm25": 20}')
    report = verify(chain, signer)
    assert [(i.record_id, i.problem) for i in report.issues] == [(chain[1].id,
                                                                  "content_modified")]


def test_content_fetched_by_sha256(signer: EvidenceSigner) -> None:
    store = {r.sha256: r.content for r in make_chain(signer)}
    chain = [edit(r, content=None) for r in make_chain(signer)]
    assert verify_records(chain, store.get, [signer.public_pem()]).ok
    store[chain[3].sha256] = b"swapped"
    del store[chain[4].sha256]
    report = verify_records(chain, store.get, [signer.public_pem()])
    assert report.problems(chain[3].id) == {"content_modified"}
    assert report.problems(chain[4].id) == {"content_missing"}
    assert verify_records(chain[4:], None, [signer.public_hex()],
                          anchors={"station:dongsi": ChainHead.of(chain[3])},
                          require_content=False).ok


@pytest.mark.parametrize(("name", "value"), [
    ("params", {"limit": 35.0, "window_h": 24, "codes": ["a34004"]}),
    ("detector_version", "1.2.1"),
    ("time", T0 + timedelta(hours=2, seconds=1)),
    ("fixed_at", datetime(2030, 1, 1, tzinfo=UTC)),
    ("clue_id", "env:dongsi:pm25:other"),
    ("sha256", sha256_hex(b"other")),
    ("name", "renamed.json"),
    ("media_type", "text/plain"),
    ("detector", "env.flatline"),
    ("id", "0" * 32),
])
def test_modified_metadata(signer: EvidenceSigner, name: str, value: object) -> None:
    chain = make_chain(signer)
    chain[2] = edit(chain[2], **{name: value})
    problems = verify(chain, signer).problems(chain[2].id)
    assert "metadata_modified" in problems
    assert "bad_signature" not in problems  # the stored hash is still the signed one


def test_every_meaningful_field_is_hashed() -> None:
    assert set(HASHED_FIELDS) == {f.name for f in dataclasses.fields(EvidenceRecord)} - {
        "record_hash", "signature", "uri", "content"}


def test_rehashed_edit_fails_signature(signer: EvidenceSigner) -> None:
    chain = make_chain(signer)
    forged = edit(chain[2], detector_version="9.9")
    forged = edit(forged, record_hash=forged.compute_hash())
    chain[2] = forged
    report = verify(chain, signer)
    assert report.problems(forged.id) == {"bad_signature"}
    # the next record still points at the original hash
    assert report.problems(chain[3].id) == {"deleted"}


def test_other_key_is_a_bad_signature(signer: EvidenceSigner) -> None:
    intruder = EvidenceSigner(Ed25519PrivateKey.generate())
    chain = make_chain(signer)
    chain[4] = resign(edit(chain[4], key_id=intruder.key_id), intruder)
    issue, = verify(chain, signer).issues
    assert issue.problem == "bad_signature" and "unknown key" in issue.detail
    assert verify_records(chain, None, [signer.public_hex(), intruder.public_hex()]).ok


def test_deleted_records(signer: EvidenceSigner) -> None:
    chain = make_chain(signer, 6)
    report = verify(chain[:2] + chain[4:], signer)
    issue, = report.issues
    assert (issue.record_id, issue.problem) == (chain[4].id, "deleted")
    assert "seq 3..4" in issue.detail
    first = verify(chain[1:], signer).issues
    assert [(i.record_id, i.problem) for i in first] == [(chain[1].id, "deleted")]
    assert verify(chain[1:], signer, anchors={"station:dongsi": ChainHead.of(chain[0])}).ok


def test_truncated_tail_needs_expected_head(signer: EvidenceSigner) -> None:
    chain = make_chain(signer, 6)
    assert verify(chain[:4], signer).ok  # a chain alone cannot show its lost tail
    report = verify(chain[:4], signer,
                    expected_heads={"station:dongsi": ChainHead.of(chain[-1])})
    issue, = report.issues
    assert (issue.record_id, issue.problem) == (chain[3].id, "deleted")
    assert "seq 5..6" in issue.detail


def test_deleted_and_renumbered(signer: EvidenceSigner) -> None:
    chain = make_chain(signer)
    tail = [resign(edit(r, seq=r.seq - 1), signer) for r in chain[3:]]  # even with the key
    report = verify(chain[:2] + tail, signer)
    assert report.problems(tail[0].id) == {"deleted"}


def test_reordered_presentation(signer: EvidenceSigner) -> None:
    chain = make_chain(signer)
    shown = [chain[0], chain[2], chain[1], chain[3], chain[4]]
    issue, = verify(shown, signer).issues
    assert (issue.record_id, issue.problem) == (chain[1].id, "reordered")


def test_swapped_sequence_numbers(signer: EvidenceSigner) -> None:
    chain = make_chain(signer)
    a, b = edit(chain[1], seq=3), edit(chain[2], seq=2)
    report = verify([chain[0], b, a, chain[3], chain[4]], signer)
    assert report.problems(a.id) == {"metadata_modified", "reordered"}
    assert report.problems(b.id) == {"metadata_modified", "reordered"}


def test_fork_is_duplicate_seq(signer: EvidenceSigner) -> None:
    chain = make_chain(signer, 3)
    fork = seal(source="station:dongsi", clue_id="c", time=T0, media_type="text/plain",
                name="fork", head=ChainHead.of(chain[1]), signer=signer, content=b"x")
    report = verify(chain + [fork], signer)
    assert [i.problem for i in report.issues] == ["duplicate_seq"]


def test_sources_are_separate_chains(signer: EvidenceSigner) -> None:
    a = make_chain(signer, 3, source="station:dongsi")
    b = make_chain(signer, 3, source="camera:gate-1")
    mixed = [a[0], b[0], b[1], a[1], a[2], b[2]]
    report = verify(mixed, signer)
    assert report.ok and set(report.heads) == {"station:dongsi", "camera:gate-1"}
    with pytest.raises(ValueError, match="head of chain"):
        seal(source="camera:gate-1", clue_id="c", time=T0, media_type="text/plain", name="n",
             head=ChainHead.of(a[-1]), signer=signer, content=b"")


def test_survives_a_database_round_trip(signer: EvidenceSigner) -> None:
    """PostgreSQL gives times back in the session zone and jsonb numbers as decimals."""
    rec = seal(source="s", clue_id="c", time=T0, media_type="application/json", name="n",
               head=None, signer=signer, content=b"{}",
               params={"f": 2.0, "big": 1e20, "small": 1e-7, "t": (1, 2), "u": "µg/m³"})
    back = edit(rec, time=rec.time.astimezone(timezone(timedelta(hours=8))),
                params={"u": "µg/m³", "t": [1, 2], "small": 1e-07, "big": 10**20, "f": 2.0})
    assert verify([back], signer).ok
    assert canonical_json({"b": 1.0, "a": [1e20]}) == b'{"a":[100000000000000000000],"b":1}'


def test_refuses_what_cannot_be_fixed(signer: EvidenceSigner) -> None:
    kw = dict(source="s", clue_id="c", media_type="text/plain", name="n", head=None,
              signer=signer)
    with pytest.raises(ValueError, match="timezone"):
        seal(time=datetime(2016, 1, 1), content=b"x", **kw)
    with pytest.raises(ValueError, match="non-finite"):
        seal(time=T0, content=b"x", params={"x": float("nan")}, **kw)
    with pytest.raises(ValueError, match="does not match"):
        seal(time=T0, content=b"x", sha256=sha256_hex(b"y"), **kw)
    with pytest.raises(ValueError, match="needs content"):
        seal(time=T0, **kw)


def test_seal_stream_evidence_record(signer: EvidenceSigner) -> None:
    inline = Evidence(clue_id="video:cam1:occlusion:x", source="camera:cam1", time=T0,
                      item=EvidenceRef(media_type="image/jpeg", name="frame.jpg",
                                       content=b"\xff\xd8jpeg"),
                      detector="video.occlusion", detector_version="0.3",
                      params={"ratio": 0.8})
    rec = seal_evidence(inline, None, signer)
    assert rec.content == b"\xff\xd8jpeg" and rec.sha256 == sha256_hex(b"\xff\xd8jpeg")
    by_ref = inline.model_copy(update={"item": EvidenceRef(
        media_type="image/tiff", name="tile.tif", sha256=sha256_hex(b"tile"))})
    ref = seal_evidence(by_ref, ChainHead.of(rec), signer, uri="file:///media/tile.tif")
    assert ref.content is None and ref.uri == "file:///media/tile.tif"
    report = verify_records([rec, ref], {sha256_hex(b"tile"): b"tile"}.get,
                            [signer.public_hex()])
    assert report.ok
    again = seal_evidence(inline, ChainHead.of(ref), signer)
    assert again.id == rec.id  # same item, same natural key: the DB layer skips it


def test_key_created_once_private_and_exportable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = EvidenceSigner.load_or_create(state)
    path = state / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = EvidenceSigner.load_or_create(state)
    assert second.key_id == first.key_id and second.public_hex() == first.public_hex()
    assert len(first.public_hex()) == 64 and "BEGIN PUBLIC KEY" in first.public_pem()
    assert key_id_of(load_public_key(first.public_pem())) == first.key_id
    assert key_id_of(load_public_key(bytes.fromhex(first.public_hex()))) == first.key_id
    assert [p.name for p in state.iterdir()] == [KEY_FILE]  # no temporary left behind
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        EvidenceSigner.load_or_create(state)
