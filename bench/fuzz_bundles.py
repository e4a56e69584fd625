"""Fuzz the case bundle verifier (``storage.case_verify.verify_bundle``, ``offsite case
verify``): a bundle is a file a department receives by mail, so anything may arrive.

One real bundle is made (two chained evidence items of a clue, a chain link of another
clue, signed manifest, report, verify script: ``storage.case_bundle.write_bundle``, no
database), then Hypothesis damages it: bytes flipped, inserted, deleted or cut anywhere in
the zip; members dropped, added, replaced by random or mutated bytes; the manifest's JSON
changed at a random place (a value replaced, a key dropped, wrong types), or replaced by
random JSON, deep nesting or non-JSON; plus empty, random and non-zip files.

Every input is accounted for:

* accepted (``ok``): only if every member still holds exactly the original bytes (a zip
  header change that touches no content); accepting changed content is counted a crash;
* rejected: ``ok`` false with at least one problem, the first one's class is tallied;
* anything escaping ``verify_bundle`` (it must never raise) is a crash.

Run: ``.venv/bin/python -m bench.fuzz_inputs --only bundles`` (or ``-m bench.fuzz_bundles``).
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import zipfile
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from bench.fuzz_inputs import Tally, _run, reason_class
from storage.case_bundle import CaseData, write_bundle
from storage.case_verify import verify_bundle
from storage.evidence_chain import ChainHead, EvidenceSigner, seal

CLUE_ID = "video:FUZZ-CAM:tamper/occlusion:20250101T000000+0000"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


@cache
def original() -> tuple[bytes, dict[str, bytes]]:
    """The bundle's bytes and its members, made once per process with a fresh key."""
    with tempfile.TemporaryDirectory() as tmp:
        signer = EvidenceSigner.load_or_create(Path(tmp) / "key")
        head: ChainHead | None = None
        records = []
        for n, (clue_id, name, content) in enumerate([
                (CLUE_ID, "before.jpg", b"\xff\xd8 before \xff\xd9"),
                ("video:OTHER:x:20250101T000000+0000", "other.json", b'{"other": 1}'),
                (CLUE_ID, "after.jpg", b"\xff\xd8 after \xff\xd9")]):
            rec = seal(source="camera:FUZZ-CAM", clue_id=clue_id, time=T0 + timedelta(seconds=n),
                       media_type="image/jpeg", name=name, head=head, signer=signer,
                       content=content, detector="video.tamper", params={"threshold": 0.35})
            head = ChainHead.of(rec)
            records.append(rec)
        items = [records[0], records[2]]
        route = {"site": "s1", "department": "dept-a", "departments": ["dept-a"],
                 "jurisdiction": {"id": "j1", "name": "J1", "county": "C"}, "zones": []}
        clue = {"clue_id": CLUE_ID, "modality": "video", "kind": "occlusion",
                "summary": "camera covered", "metrics": {"value": 0.91},
                "location": {"type": "Point", "coordinates": [119.9, 32.4]},
                "department": "dept-a"}
        case = CaseData(CLUE_ID, clue, [{"time": "2025-01-01T00:00:00Z", "kind": "occlusion",
                                         "state": "open", "payload": {"route": route}}],
                        items, [records[1]], {"camera:FUZZ-CAM": {"seq": 0,
                                                                  "record_hash": "0" * 64}},
                        {r.id: r.content or b"" for r in items})
        out = Path(tmp) / "bundle.zip"
        write_bundle(case, out, signer=signer)
        data = out.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    return data, members


def _zip(members: dict[str, bytes], deflate: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


_JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                       st.floats(allow_nan=False), st.text(max_size=20))
_JSON = st.recursive(_JSON_LEAF, lambda kids: st.lists(kids, max_size=3)
                     | st.dictionaries(st.text(max_size=8), kids, max_size=3), max_leaves=8)


@st.composite
def _byte_damage(draw: st.DrawFn) -> bytes:
    data = bytearray(original()[0])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        else:
            data = data[:pos]
    return bytes(data)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def _manifest_damage(draw: st.DrawFn) -> bytes:
    members = dict(original()[1])
    manifest = json.loads(members["manifest.json"])
    path = draw(st.sampled_from(_paths(manifest)[1:]))
    parent = manifest
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(_JSON)
    members["manifest.json"] = (json.dumps(manifest, indent=2, ensure_ascii=False)
                                + "\n").encode()
    return _zip(members)


@st.composite
def _member_damage(draw: st.DrawFn) -> bytes:
    members = dict(original()[1])
    names = sorted(members)
    op = draw(st.sampled_from(["drop", "add", "replace", "mutate", "json"]))
    name = draw(st.sampled_from(names))
    if op == "drop":
        del members[name]
    elif op == "add":
        members[draw(st.sampled_from(["media/x.jpg", "../evil", "manifest.json.bak", "a"]))] = \
            draw(st.binary(max_size=64))
    elif op == "replace":
        members[name] = draw(st.binary(max_size=256))
    elif op == "mutate" and members[name]:
        data = bytearray(members[name])
        data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        members[name] = bytes(data)
    else:
        members[draw(st.sampled_from(["manifest.json", "manifest.sig"]))] = draw(st.one_of(
            _JSON.map(lambda v: json.dumps(v).encode()),
            st.integers(1, 50_000).map(lambda n: b"[" * n + b"]" * n),
            st.sampled_from([b"", b"\xff\xfe", b"NaN", b"{", b"\x00"])))
    return _zip(members, deflate=draw(st.booleans()))


BUNDLE_INPUTS = st.one_of(_byte_damage(), _byte_damage(), _manifest_damage(),
                          _manifest_damage(), _member_damage(), _member_damage(),
                          st.binary(max_size=200), st.just(b""),
                          st.just(b"PK\x05\x06" + b"\x00" * 18))


def check_bundle(case: object, tally: Tally) -> None:
    data = case if isinstance(case, bytes) else b""
    report = verify_bundle(io.BytesIO(data))  # must never raise
    if report.ok:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            got = {n: zf.read(n) for n in zf.namelist()}
        assert got == original()[1], "accepted a bundle whose content changed"
        tally.accepted["unchanged content (zip headers only)"] += 1
        return
    assert report.problems, "not ok but no problem named"
    tally.rejected[reason_class(report.problems[0])] += 1


def fuzz_case_bundles(cases: int, seed_value: int = 1) -> Tally:
    return _run(Tally("case bundle verify_bundle"), BUNDLE_INPUTS, check_bundle, cases,
                seed_value)


if __name__ == "__main__":
    result = fuzz_case_bundles(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
    print(result.report())
    sys.exit(1 if result.crashes or not result.accounted() else 0)
