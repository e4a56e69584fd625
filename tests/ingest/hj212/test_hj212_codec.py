"""HJ 212 parser: every sample frame as its `verified`/`expected` fields state, CRC variants,
versions, lengths, DataTime, the Reading mapping, and "only HJ212Error ever escapes"."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.hj212 import HJ212Error, classify_crc, crc_hj212, crc_modbus, parse_frame, to_reading
from ingest.hj212.build import encode_frame
from ingest.hj212.codec import Frame

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "hj212" / "packets.jsonl"
ROWS = [json.loads(line) for line in SAMPLES.read_text(encoding="utf-8").splitlines() if line]
VARIANTS = {"crc_hj212/seg": "hj212", "crc_modbus/seg": "modbus",
            "crc_modbus/seg/swapped": "modbus-swapped"}
NUMERIC = {"Rtd", "Avg", "Min", "Max", "Cou", "ZsRtd", "ZsAvg", "ZsMin", "ZsMax", "ZsCou"}
HEADER_KEYS = ("QN", "ST", "CN", "PW", "MN", "Flag")
#: Samples whose notes describe a header the standard forbids (6.3.3.2.1 case-sensitive).
MALFORMED_HEADER = {";,MN=88888881234567;FLAG=0;"}


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [f"{i}-{r['packet'][:14]}" for i, r in enumerate(rows)]


def check_cp(frame: Frame, cp: dict[str, str]) -> None:
    """Each raw CP key/value lands where the contract says, typed per field."""
    for key, raw in cp.items():
        code, _, field = key.rpartition("-")
        if key == "DataTime":
            assert frame.data_time_text == raw
            assert frame.data_time is not None
            assert frame.data_time.strftime("%Y%m%d%H%M%S") == raw[:14]
        elif code and field in NUMERIC:
            assert frame.values[code][field] == float(raw)
            assert isinstance(frame.values[code][field], float)
        elif code and field in ("Flag", "EFlag", "SampleTime"):
            assert frame.values[code][field] == raw
        else:
            assert frame.extra[key] == raw


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_sample_matches_verified_and_expected(row: dict[str, Any]) -> None:
    frame = parse_frame(row["packet"])
    ver = row["verified"]
    assert frame.length_valid is ver["len_ok"]
    assert frame.declared_length == ver["declared_len"]
    assert frame.actual_length == ver["actual_len"]
    assert frame.crc_sent == ver["crc_in_packet"]
    assert frame.crc_computed == ver["crc_hj212_computed"]
    assert frame.crc_valid is ver["crc_ok_hj212"]
    matches = [VARIANTS[v] for v in ver["crc_matches_variants"]]
    assert frame.crc_variant == (matches[0] if matches else None)
    assert frame.ends_crlf is ver["ends_crlf"]
    malformed = any(m in row["packet"] for m in MALFORMED_HEADER)
    assert frame.ok is (ver["len_ok"] and ver["crc_ok_hj212"] and not malformed)
    if not frame.ok:
        assert frame.error
    for key, want in row.get("expected", {}).items():
        if key in HEADER_KEYS:
            assert frame.header[key] == want
        elif key == "crc":
            assert frame.crc_sent == want
        elif key == "CP":
            check_cp(frame, want)
        elif key == "CP_order":
            assert want[0] == "DataTime" and frame.data_time_text is not None
            assert list(frame.values) == want[1:]
        elif key == "assertEquals_in_test":
            assert frame.ok  # the peer's generator reproduced this exact string
        else:
            pytest.fail(f"unhandled expected key {key!r}: extend the test")


def test_malformed_header_is_reported_not_guessed() -> None:
    row = next(r for r in ROWS if ";,MN=" in r["packet"])
    frame = parse_frame(row["packet"])
    assert not frame.ok and frame.crc_valid
    assert frame.mn is None and "Flag" not in frame.header
    assert "',MN'" in (frame.error or "") and "'FLAG'" in (frame.error or "")
    assert frame.values["001"] == {"Rtd": 6.951, "Flag": "N"}  # still parsed


def test_versions_from_flag() -> None:
    by_flag = {r["expected"].get("Flag") if "expected" in r else None: r for r in ROWS}
    assert parse_frame(by_flag["5"]["packet"]).version == "2017"
    assert parse_frame(by_flag["8"]["packet"]).version == "2025"
    flags = {parse_frame(r["packet"]).header.get("Flag"): parse_frame(r["packet"]).version
             for r in ROWS}
    assert flags[None] == "2005"
    assert flags["4"] == flags["6"] == flags["7"] == "2017"
    seg = "ST=32;CN=2011;PW=1;MN=X;Flag={};CP=&&&&"
    assert parse_frame(encode_frame(seg.format(0))).version == "2005"
    odd = parse_frame(encode_frame(seg.format(200)))
    assert odd.version is None and odd.ok and any("version" in n for n in odd.notes)
    assert not parse_frame(encode_frame(seg.format(256))).ok
    assert not parse_frame(encode_frame(seg.format("x"))).ok


def test_crc_algorithms() -> None:
    assert crc_modbus(b"123456789") == 0x4B37  # CRC-16/MODBUS check value
    seg = b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;" \
          b"Flag=5;CP=&&RtdInterval=30&&"
    assert crc_hj212(seg) == 0x1C80
    assert classify_crc(seg, "1c80") == "hj212"
    assert classify_crc(seg, "1C08") is None  # the standard's prose typo
    assert classify_crc(seg, "zzzz") is None
    assert len({crc_hj212(bytes([a, b, 7])) for a in range(256) for b in range(256)}) <= 256


def _reference_hj212(data: bytes) -> int:
    """Appendix A as printed, bit by bit (the library uses a table)."""
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            lsb = reg & 1
            reg >>= 1
            if lsb:
                reg ^= 0xA001
    return reg


def _reference_modbus(data: bytes) -> int:
    reg = 0xFFFF
    for byte in data:
        reg ^= byte
        for _ in range(8):
            lsb = reg & 1
            reg >>= 1
            if lsb:
                reg ^= 0xA001
    return reg


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_table_crcs_equal_the_bitwise_algorithms(data: bytes) -> None:
    assert crc_hj212(data) == _reference_hj212(data)
    assert crc_modbus(data) == _reference_modbus(data)


def test_length_mismatch_kept_and_flagged() -> None:
    good = parse_frame(ROWS[0]["packet"])
    bad = parse_frame("##0100" + good.raw[6:])
    assert not bad.ok and not bad.length_valid and bad.crc_valid
    assert "length" in (bad.error or "")
    assert bad.extra == {"RtdInterval": "30"} and bad.mn == good.mn


def test_long_frame_counted_in_utf8_bytes() -> None:
    items = ";".join(f"a{i:05d}-Rtd={i}.5,a{i:05d}-Flag=N" for i in range(60))
    seg = f"QN=20240101000000000;ST=22;CN=2011;PW=1;MN=站点A;Flag=4;CP=&&DataTime=" \
          f"20240101000000;{items}&&"
    frame = parse_frame(encode_frame(seg))
    assert frame.actual_length == len(seg.encode()) > 1024 > len(seg) - 1024
    assert frame.ok and frame.mn == "站点A" and "segment over 1024 bytes" in frame.notes
    assert parse_frame(encode_frame(seg).encode("utf-8")).values == frame.values
    miscount = parse_frame(f"##{len(seg):04d}" + encode_frame(seg)[6:])
    assert not miscount.length_valid and not miscount.ok


def test_data_time_forms_and_zone() -> None:
    ms = parse_frame(ROWS[2]["packet"])  # DataTime with milliseconds
    assert ms.data_time == datetime(2016, 8, 24, 0, 38, 17, tzinfo=timezone(timedelta(hours=8)))
    utc = parse_frame(ROWS[2]["packet"], tz=UTC)
    assert utc.data_time is not None and utc.data_time.utcoffset() == timedelta(0)
    bad = parse_frame(encode_frame("ST=32;CN=2011;PW=1;MN=X;CP=&&DataTime=20241332000000&&"))
    assert not bad.ok and bad.data_time is None and "DataTime" in (bad.error or "")


@pytest.mark.parametrize("text", ["", "\r\n", "hello", "##", "##12", "##0010", "##abcdQN=1;1234",
                                  "##0005CP=&&&&GHIJ\r\n", "#0005abcde1234", b"##0001\xff1234",
                                  "##0001\ud800ABCD"])
def test_not_a_frame_raises_hj212error(text: str | bytes) -> None:
    with pytest.raises(HJ212Error):
        parse_frame(text)


def test_cp_structure() -> None:
    seg = ("QN=1;ST=32;CN=2011;PW=1;MN=M;Flag=4;CP=&&DataTime=20240101000000;"
           "a1-Rtd=-1.5e2,a1-Flag=N,a1-EFlag=A01;SB1-RS=1;b2-Rtd=,b2-Flag=D;junk&&")
    frame = parse_frame(encode_frame(seg))
    assert frame.values["a1"] == {"Rtd": -150.0, "Flag": "N", "EFlag": "A01"}
    assert frame.values["b2"] == {"Rtd": "", "Flag": "D"}
    assert frame.extra == {"SB1-RS": "1"}
    assert not frame.ok and "junk" in (frame.error or "")
    unclosed = parse_frame(encode_frame("ST=32;CN=2011;PW=1;MN=M;CP=&&a-Rtd=1"))
    assert not unclosed.ok and unclosed.values == {"a": {"Rtd": 1.0}}
    split = parse_frame(encode_frame("ST=32;CN=2051;PW=1;MN=M;Flag=7;CP=&&&&"))
    assert not split.ok and "PNUM" in (split.error or "")


def test_to_reading_periods_and_policy() -> None:
    rtd = to_reading(parse_frame(ROWS[1]["packet"]))
    assert (rtd.station, rtd.period, rtd.source) == ("LD130133000015", "rtd", "hj212")
    assert rtd.values == {"011": 231.0, "B01": 36.91, "060": 1.803}
    assert rtd.flags == {"011": "N", "060": "N"}
    hour = to_reading(parse_frame(ROWS[7]["packet"]))
    assert hour.period == "hour" and hour.values["a34006"] == 2.697
    minute = to_reading(parse_frame(ROWS[12]["packet"]))
    assert minute.period == "minute" and minute.flags["a00000"] == "B"
    modbus = parse_frame(ROWS[15]["packet"])
    assert to_reading(modbus).values == {"a34002": 30.1, "a21026": 0.5}
    with pytest.raises(HJ212Error):
        to_reading(modbus, strict=True)
    for index in (0, 9, 14):  # 1062 command, 9011 reply, header without MN
        with pytest.raises(HJ212Error):
            to_reading(parse_frame(ROWS[index]["packet"]))
    corrupt = ROWS[1]["packet"].replace("1dc0", "0000")
    with pytest.raises(HJ212Error):
        to_reading(parse_frame(corrupt))


def _mutations() -> st.SearchStrategy[str]:
    base = st.sampled_from([r["packet"] for r in ROWS])
    return st.tuples(base, st.integers(0, 2000), st.integers(0, 40), st.text(max_size=8)).map(
        lambda t: t[0][: t[1]] + t[3] + t[0][t[1] + t[2]:])


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), _mutations(),
                 st.text(alphabet="#0123456789ABCDEF;=,&-CPQNSTMWFlag\r\n", max_size=80)))
def test_only_hj212error_escapes(raw: str | bytes) -> None:
    try:
        frame = parse_frame(raw)
    except HJ212Error:
        return
    out = frame.to_json_dict()
    json.dumps(out)
    assert out["ok"] is (out["error"] is None)
