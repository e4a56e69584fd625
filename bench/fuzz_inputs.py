"""Fuzz the two station-input decoders: the HJ 212 parser and the MQTT JSON reading decoder.

Hypothesis generates the inputs (mutated real frames, frames built field by field with a
right or wrong length and CRC, random text and bytes; for JSON: readings with odd fields,
random JSON documents, mutated and truncated payloads, deep nesting, over-long numbers,
random topics). Every input is accounted for:

* HJ 212: ``parse_frame`` returns a Frame (accepted; then ``to_reading`` gives a reading or
  rejects it with an :class:`HJ212Error` reason) or raises :class:`HJ212Error` (rejected);
* JSON: ``decode_message`` with the input rules (``contract.input_rules``, offline time
  bounds) returns readings (accepted; items or codes it refused are listed with reasons) or
  raises :class:`PayloadError` (rejected, the message is the reason); no reading at all is a
  rejection with the first refusal as reason.

Any other exception is a crash: it is counted, its first few tracebacks are printed, and
the run exits 1. Accepted results are also serialised (``Frame.to_json_dict``, the Kafka
record form of each reading) since that is what happens to them next.

Run: ``.venv/bin/python -m bench.fuzz_inputs [--cases 100000] [--seed 1]
[--only hj212|json|inbox]`` (``inbox``: the satellite inbox, ``bench/fuzz_inbox.py``)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from contract.input_rules import InputError, check_text
from contract.records import EnvReadings, Reading, env_records, readings_of
from contract.settings import Settings
from ingest.hj212 import HJ212Error, build, parse_frame, to_reading
from ingest.hj212.codec import HEADER_FIELDS
from ingest.hj212.crc import crc_hj212, format_crc
from ingest.mqtt import PayloadError, decode_message

ROOT = Path(__file__).resolve().parent.parent
CST = timezone(timedelta(hours=8))
STATION = "S0001"
FUZZ_SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]


@dataclass
class Tally:
    """What became of every input."""

    name: str
    total: int = 0
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_accepted(self) -> int:
        return sum(self.accepted.values())

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    def accounted(self) -> bool:
        return self.n_accepted + self.n_rejected + len(self.crashes) == self.total

    def report(self, top: int = 12) -> str:
        rate = self.total / self.seconds if self.seconds else 0.0
        lines = [f"{self.name}: {self.total} cases in {self.seconds:.1f} s ({rate:.0f}/s): "
                 f"{self.n_accepted} accepted, {self.n_rejected} rejected with a reason, "
                 f"{len(self.crashes)} crashes"]
        for label, counter in (("accepted", self.accepted), ("rejected", self.rejected)):
            for reason, n in counter.most_common(top):
                lines.append(f"  {label:8s} {n:7d}  {reason}")
            if len(counter) > top:
                rest = sum(n for _, n in counter.most_common()[top:])
                lines.append(f"  {label:8s} {rest:7d}  ({len(counter) - top} other reasons)")
        lines += [f"  CRASH {c}" for c in self.crashes[:5]]
        return "\n".join(lines)


def reason_class(message: str) -> str:
    """A reason without its variable parts, so equal causes count together."""
    text = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "…", message)
    text = re.sub(r"\b[0-9A-Fa-f]*[0-9][0-9A-Fa-f]*\b", "N", text)
    text = re.sub(r"\(.*?\)", "(…)", text)
    return text[:90]


def _run(tally: Tally, strategy: st.SearchStrategy, check: Callable[[object, Tally], None],
         cases: int, seed_value: int) -> Tally:
    @seed(seed_value)
    @settings(max_examples=cases, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), derandomize=False)
    @given(strategy)
    def one(case: object) -> None:
        tally.total += 1
        try:
            check(case, tally)
        except Exception:  # noqa: BLE001 - anything escaping the checker is a crash
            tally.crashes.append(f"{case!r:.300}\n{traceback.format_exc(limit=6)}")

    started = time.perf_counter()
    one()
    tally.seconds = time.perf_counter() - started
    return tally


# ---- HJ 212 -------------------------------------------------------------------------------

def _seed_frames() -> list[bytes]:
    frames = []
    path = ROOT / "samples" / "hj212" / "packets.jsonl"
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                frames.append(json.loads(line)["packet"].encode("utf-8"))
    for hour, period in ((1, "rtd"), (2, "minute"), (3, "hour"), (4, "day")):
        reading = Reading(station=STATION, period=period,  # type: ignore[arg-type]
                          time=datetime(2026, 3, 1, hour, tzinfo=CST),
                          values={"a34004": 35.2, "a21026": 3.0, "w01018": -1.5e-3},
                          flags={"a34004": "N", "a21026": "D"})
        frames.append(build.data_frame(reading, pw="123456", qn="20260301010000000",
                                       ack=hour % 2 == 0).encode())
    return frames


SEEDS = _seed_frames()
SPECIAL = [b";", b",", b"=", b"&", b"&&", b"##", b"\r\n", b"\n", b"\x00", b"-", b"CP=&&",
           b"\xff", b"\xe4\xb8\xad", b"9999", b"0000", b"DataTime=", b"Flag=", b"PNO=1",
           b"PNUM=0", b"MN=", b"CN=2011", b"Rtd=", b"1e999", b"NaN", b"-0", b"\xed\xa0\x80"]


@st.composite
def mutated_frame(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "insert", "special", "delete", "dup", "cut"]))
        if op == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "special":
            data[pos:pos] = draw(st.sampled_from(SPECIAL))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 12))]
        elif op == "dup":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 40))]
        elif op == "cut":
            data = data[:pos]
    return bytes(data)


_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
                max_size=12)
_FIELDISH = st.one_of(_TEXT, st.from_regex(r"[0-9A-Za-z.\-+]{0,10}", fullmatch=True),
                      st.sampled_from(["", "0", "-1", "1e999", "nan", "inf", ".5", "1.",
                                       "20260301010000", "20261399250000", "99999999999999",
                                       "20260301010000123", "N", "D", "255", "256", "5", "7"]))


@st.composite
def built_frame(draw: st.DrawFn) -> bytes:
    """A frame assembled item by item, mostly with the right length and CRC, so the
    parser's deeper stages (header, Flag/PNO, CP fields, DataTime) see the oddities."""
    header = []
    keys = st.one_of(st.sampled_from(HEADER_FIELDS), st.sampled_from(HEADER_FIELDS), _TEXT)
    for key in draw(st.lists(keys, max_size=6)):
        header.append(f"{key}={draw(_FIELDISH)}" if draw(st.booleans()) or key else key)
    if draw(st.booleans()):
        header = [f"CN={draw(st.sampled_from(['2011', '2051', '2061', '2031', '2081', '9014']))}",
                  f"MN={draw(st.sampled_from([STATION, '', 'x' * 70]))}", *header]
    cp = []
    if draw(st.integers(0, 3)):
        cp.append("DataTime=" + draw(st.one_of(
            st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
                lambda d: d.strftime("%Y%m%d%H%M%S").zfill(14)), _FIELDISH)))
    for _ in range(draw(st.integers(0, 6))):
        code = draw(st.one_of(st.sampled_from(["a34004", "a21026", "w01018", ""]), _TEXT))
        fname = draw(st.one_of(st.sampled_from(["Rtd", "Avg", "Min", "Max", "Flag", "Cou",
                                                "EFlag", "SampleTime"]), _TEXT))
        cp.append(draw(st.sampled_from(["{c}-{f}={v}", "{c}-{f}", "{c}={v}", "{v}"])).format(
            c=code, f=fname, v=draw(_FIELDISH)))
    sep = draw(st.sampled_from([";", ",", ";;"]))
    close = draw(st.sampled_from(["&&", "&", ""]))
    segment = ";".join(header) + ";CP=&&" + sep.join(cp) + close
    if draw(st.integers(0, 9)) == 0:
        segment = segment.replace("CP=&&", draw(st.sampled_from(["", "CP=&", "cp=&&"])))
    seg = segment.encode("utf-8")
    length = len(seg) if draw(st.integers(0, 4)) else draw(st.integers(0, 9999))
    crc = format_crc(crc_hj212(seg)) if draw(st.integers(0, 4)) else \
        draw(st.from_regex(r"[0-9A-Fa-f]{4}", fullmatch=True))
    end = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b""]))
    return b"##%04d" % min(length, 9999) + seg + crc.encode() + end


HJ212_INPUTS = st.one_of(
    mutated_frame(), mutated_frame(), built_frame(), built_frame(), built_frame(),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.tuples(st.from_regex(r"##[0-9]{0,5}", fullmatch=True), st.text(max_size=80),
              st.from_regex(r"[0-9A-Fa-f]{0,5}", fullmatch=True)).map(
        lambda t: "".join(t).encode("utf-8", "surrogatepass")),
    st.text(max_size=120),  # str input, as the CLI passes it (surrogates included)
)


def check_hj212(case: object, tally: Tally) -> None:
    try:
        frame = parse_frame(case)  # type: ignore[arg-type]
    except HJ212Error as exc:
        tally.rejected[reason_class(str(exc))] += 1
        return
    json.dumps(frame.to_json_dict(), ensure_ascii=False)  # what the CLI prints
    _ = (frame.ok, frame.error, frame.flag, frame.needs_ack, frame.packet, frame.version)
    try:
        reading = to_reading(frame)
    except HJ212Error as exc:
        tally.accepted["frame, no reading: " + reason_class(str(exc))] += 1
        return
    again = Reading.loads(reading.dumps())
    assert again.station == reading.station and again.values.keys() == reading.values.keys()
    tally.accepted["reading" + ("" if frame.ok else " (frame flagged not ok)")] += 1


# ---- JSON readings ------------------------------------------------------------------------

_TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),  # naive: must be refused
    st.sampled_from(["2026-11-25T08:00:00+08:00", "2026-11-25", "2026-13-40T99:00:00Z",
                     "", "now", "2026-11-25T08:00:00Z", "1e10", "20261125080000"]),
    st.integers(-2**63, 2**63), st.floats(), st.none(), _TEXT)
_NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                     st.integers(-10**30, 10**30), st.sampled_from(["1.5", "x", "", "NaN"]),
                     st.none(), st.booleans(), st.lists(st.integers(), max_size=2))
_JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | _TEXT,
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_TEXT, inner, max_size=4), max_leaves=12)


@st.composite
def reading_doc(draw: st.DrawFn) -> dict:
    doc: dict = {"time": draw(_TIMES),
                 "values": draw(st.dictionaries(st.one_of(st.sampled_from(["a34004", "a21026"]),
                                                          _TEXT), _NUMBERS, max_size=4))}
    optional = {
        "period": st.one_of(st.sampled_from(["rtd", "minute", "hour", "day", "week", ""]),
                            _JSON),
        "flags": st.one_of(st.dictionaries(_TEXT, st.one_of(_TEXT, _JSON), max_size=3), _JSON),
        "interval_s": st.one_of(st.integers(-10, 10**20), st.floats(), _TEXT),
        "station": st.one_of(st.just(STATION), _TEXT, _JSON),
        "event": st.one_of(st.sampled_from(["restart", "reboot"]), _JSON),
        "source": _TEXT, "unknown": _JSON,
    }
    for key, strategy in optional.items():
        if draw(st.integers(0, 3)) == 0:
            doc[key] = draw(strategy)
    for key in draw(st.lists(st.sampled_from(["time", "values"]), max_size=1)):
        doc.pop(key, None)  # a required field missing
    return doc


def _dumps(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8")


@st.composite
def mutated_json(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.one_of(reading_doc(), st.lists(reading_doc(), max_size=3)).map(
        _dumps)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if op == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from([b"{", b"}", b"[", b"]", b",", b":", b'"',
                                                  b"\\", b"\\u", b"\xff", b"NaN", b"1" * 5000]))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == "cut":
            data = data[:pos]
    return bytes(data)


_GOOD = st.fixed_dictionaries(
    {"time": st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
                          timezones=st.sampled_from([CST, UTC])).map(
        lambda d: d.isoformat()),
     "values": st.dictionaries(st.sampled_from(["a34004", "a21026", "w01018"]),
                               st.floats(allow_nan=False, allow_infinity=False) | st.integers(
                                   -10**15, 10**15), max_size=3)},
    optional={"period": st.sampled_from(["rtd", "minute", "hour", "day"]),
              "flags": st.dictionaries(st.sampled_from(["a34004", "x"]),
                                       st.sampled_from(["N", "D", "F"]), max_size=2),
              "interval_s": st.integers(1, 86400), "station": st.just(STATION)})

JSON_PAYLOADS = st.one_of(
    _GOOD.map(_dumps), st.lists(_GOOD, min_size=1, max_size=3).map(_dumps),
    st.lists(st.one_of(_GOOD, _GOOD, reading_doc()), min_size=1, max_size=3).map(_dumps),
    reading_doc().map(_dumps), reading_doc().map(_dumps), reading_doc().map(_dumps),
    st.lists(reading_doc(), max_size=4).map(_dumps),
    mutated_json(), mutated_json(),
    _JSON.map(_dumps),
    st.binary(max_size=120),
    st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),        # too deep
    st.integers(1, 3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(4000, 20_000).map(lambda n: b"1" * n),                  # over-long integer
    st.sampled_from([b"", b"null", b"[]", b"{}", b"\xef\xbb\xbf{}", b"NaN", b"\x00"]),
)
TOPICS = st.integers(0, 19).flatmap(lambda n: (
    st.just(f"offsite/env/{STATION}/json") if n < 17 else
    st.just(f"offsite/env/{STATION}/hj212") if n == 17 else
    st.sampled_from(["offsite/env//json", "offsite/env/x/y", "", "/", "a/b/c/d",
                     "offsite/env/S/json/extra"]) if n == 18 else _TEXT))
JSON_INPUTS = st.tuples(TOPICS, JSON_PAYLOADS)


def check_json(case: object, tally: Tally) -> None:
    topic, payload = case  # type: ignore[misc]
    try:
        decoded = decode_message(topic, payload, FUZZ_SETTINGS, live=False)
    except PayloadError as exc:
        tally.rejected[reason_class(str(exc))] += 1
        return
    readings = decoded.readings
    if not readings:
        assert decoded.refused, "nothing accepted and no reason"
        tally.rejected[reason_class(decoded.refused[0])] += 1
        return
    odd = False
    for reading in readings:
        again = Reading.loads(reading.dumps())
        assert again.station == reading.station and again.time.utcoffset() is not None
        odd |= any(not math.isfinite(v) for v in reading.values.values())
        for code in reading.values:  # what passed the rules is storable text
            try:
                check_text(code, "code", FUZZ_SETTINGS.max_text_chars)
            except InputError as exc:
                raise AssertionError(f"accepted a code the rules refuse: {exc}") from exc
    # what the ingester puts on env.readings (batches for an array) decodes to the same
    wire = [r for rec in env_records(readings)
            for r in readings_of(EnvReadings.model_validate_json(rec.dumps()))]
    assert [r.dumps() for r in wire] == [r.dumps() for r in readings], "batch record changed them"
    tally.accepted["readings" + (" (with NaN/Infinity values)" if odd else "")] += 1


# ---- entry points ---------------------------------------------------------------------------

def fuzz_hj212(cases: int, seed_value: int = 1) -> Tally:
    return _run(Tally("HJ 212 parse_frame + to_reading"), HJ212_INPUTS, check_hj212, cases,
                seed_value)


def fuzz_json(cases: int, seed_value: int = 1) -> Tally:
    return _run(Tally("MQTT decode_message (JSON readings)"), JSON_INPUTS, check_json, cases,
                seed_value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000, help="inputs per decoder")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=("hj212", "json", "bundles", "inbox"))
    args = parser.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    tallies = []
    if args.only in (None, "hj212"):
        tallies.append(fuzz_hj212(args.cases, args.seed))
        print(tallies[-1].report(), flush=True)
    if args.only in (None, "json"):
        tallies.append(fuzz_json(args.cases, args.seed))
        print(tallies[-1].report(), flush=True)
    if args.only in (None, "bundles"):  # case bundles: bench/fuzz_bundles.py
        from bench.fuzz_bundles import fuzz_case_bundles

        tallies.append(fuzz_case_bundles(args.cases, args.seed))
        print(tallies[-1].report(), flush=True)
    if args.only in (None, "inbox"):  # STAC Items in a satellite inbox: bench/fuzz_inbox.py
        from bench.fuzz_inbox import fuzz_inbox

        inbox = fuzz_inbox(args.cases, args.seed)
        print(inbox.report(), flush=True)
        if inbox.crashes or inbox.connections or not inbox.accounted():
            return 1
    bad = [t for t in tallies if t.crashes or not t.accounted()]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
