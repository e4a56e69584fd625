"""HJ 212 frame building: the standard's own examples byte for byte, refusal of values that
would break the syntax, and build-then-parse round trips (hypothesis), sub-packets included."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.records import Reading
from ingest.hj212 import HJ212Error, Reassembler, parse_frame, to_reading
from ingest.hj212 import build as b

MN = "010000A8900016F000169DC0"
QN = "20160801085857223"
CST = timezone(timedelta(hours=8))
STANDARD_1062 = ("##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;"
                 "MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n")


def _segment(frame: str) -> str:
    parsed = parse_frame(frame)
    assert parsed.ok, parsed.error
    return parsed.segment


def test_set_interval_is_the_standards_example() -> None:
    assert b.set_rtd_interval(mn=MN, pw="100000", qn=QN, interval_s=30) == STANDARD_1062


def test_replies_match_the_standards_tables() -> None:
    request = parse_frame(b.get_time(mn=MN, pw="123456", qn=QN, pol_id="w01018"))
    assert request.segment == (f"QN={QN};ST=32;CN=1011;PW=123456;MN={MN};Flag=5;"
                               "CP=&&PolId=w01018&&")
    assert _segment(b.reply_request(request)) == (
        f"QN={QN};ST=91;CN=9011;PW=123456;MN={MN};Flag=4;CP=&&QnRtn=1&&")
    assert _segment(b.reply_execution(request)) == (
        f"QN={QN};ST=91;CN=9012;PW=123456;MN={MN};Flag=4;CP=&&ExeRtn=1&&")
    upload = parse_frame(
        "##0162QN=20231008123340461;ST=22;CN=2011;PW=123456;MN=010000A8900016F000169DC0;"
        "Flag=5;CP=&&DataTime=20231008123340;w01008-SampleTime=20231008123340,"
        "w01008-Rtd=123.456&&F441\r\n")
    assert upload.needs_ack
    assert _segment(b.reply_data(upload)) == (
        f"QN=20231008123340461;ST=91;CN=9014;PW=123456;MN={MN};Flag=4;CP=&&&&")
    when = datetime(2016, 8, 1, 0, 58, 57, tzinfo=UTC)
    assert _segment(b.set_time(mn=MN, pw="123456", qn=QN, system_time=when,
                               pol_id="w01018")) == (
        f"QN={QN};ST=32;CN=1012;PW=123456;MN={MN};Flag=5;"
        "CP=&&PolId=w01018;SystemTime=20160801085857&&")


def test_reply_to_2005_frame_without_qn() -> None:
    old = parse_frame("##0139ST=32;CN=2011;PW=123456;MN=LD130133000015;CP=&&DataTime="
                      "20160824003817000;B01-Rtd=36.91;011-Rtd=231.0,011-Flag=N;060-Rtd=1.803,"
                      "060-Flag=N&&4980\r\n")
    answer = parse_frame(b.reply_data(old))
    assert answer.ok and answer.qn is None and answer.header["Flag"] == "0"
    assert answer.version == "2005" and answer.mn == "LD130133000015"


@pytest.mark.parametrize("call", [
    lambda: b.set_rtd_interval(mn=MN, pw="1", qn=QN, interval_s=29),
    lambda: b.set_rtd_interval(mn="A;B", pw="1", qn=QN, interval_s=60),
    lambda: b.get_time(mn=MN, pw="x=y", qn=QN),
    lambda: b.set_time(mn=MN, pw="1", qn=QN, system_time=datetime(2024, 1, 1)),
    lambda: b.reply_request(parse_frame(STANDARD_1062), qn_rtn=1000),
    lambda: b.format_number(float("nan")),
    lambda: b.encode_frame("x" * 10000),
    lambda: b.data_frame(Reading(station="S", time=datetime(2024, 1, 1, tzinfo=CST),
                                 values={"a-b": 1.0})),
    lambda: b.flag_value("2099"),
])
def test_unsendable_values_are_refused(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(HJ212Error):
        call()


def test_make_qn_and_numbers() -> None:
    moment = datetime(2016, 8, 1, 0, 58, 57, 223000, tzinfo=UTC)
    assert b.make_qn(moment) == QN
    assert b.format_number(1e-05) == "0.00001"
    assert b.format_number(231.0) == "231.0"
    assert b.format_number(-2.5e16) == "-25000000000000000"


_ID = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=12)
_FLAG = st.sampled_from(list("NFMSDCBT"))
#: Realistic magnitudes: plain decimals of 1e-200 would be ~200 characters per value.
_VALUE = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15
                   ).filter(lambda x: x == 0 or abs(x) >= 1e-9)
_TIME = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                     timezones=st.sampled_from([UTC, CST,
                                                timezone(timedelta(hours=-5))])
                     ).map(lambda t: t.replace(microsecond=0))


@st.composite
def readings(draw: st.DrawFn, max_codes: int = 12) -> Reading:
    values = draw(st.dictionaries(_ID, _VALUE, max_size=max_codes))
    flags = draw(st.dictionaries(st.sampled_from(sorted(values)) if values else _ID, _FLAG,
                                 max_size=max_codes))
    return Reading(station=draw(_ID), time=draw(_TIME),
                   period=draw(st.sampled_from(["rtd", "minute", "hour", "day"])),
                   values=values, flags=flags, source="hj212")


@settings(max_examples=200, deadline=None)
@given(readings(), st.sampled_from(["2005", "2017", "2025"]), st.booleans(),
       st.one_of(st.none(), st.just(QN)))
def test_data_frame_round_trip(reading: Reading, version: str, ack: bool,
                               qn: str | None) -> None:
    frame = parse_frame(b.data_frame(reading, version=version, ack=ack, qn=qn))
    assert frame.ok, frame.error
    assert frame.version == version and frame.needs_ack is ack and frame.qn == qn
    back = to_reading(frame, strict=True)
    assert back == reading


@settings(max_examples=100, deadline=None)
@given(readings(max_codes=40), st.integers(200, 1024), st.randoms(use_true_random=False))
def test_sub_packets_reassemble(reading: Reading, limit: int, rnd) -> None:  # type: ignore[no-untyped-def]
    frames = b.data_frames(reading, max_segment=limit)
    parsed = [parse_frame(f) for f in frames]
    assert all(p.ok and p.actual_length <= limit for p in parsed)
    rnd.shuffle(parsed)
    joiner = Reassembler()
    outputs = [out for p in parsed if (out := joiner.add(p)) is not None]
    assert len(outputs) == 1 and len(joiner) == 0
    assert to_reading(outputs[0], strict=True) == reading


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 999), st.integers(30, 3600), _ID)
def test_command_and_reply_round_trip(code: int, interval: int, mn: str) -> None:
    command = parse_frame(b.set_rtd_interval(mn=mn, pw="123456", qn=QN, interval_s=interval))
    assert command.ok and command.extra == {"RtdInterval": str(interval)} and command.needs_ack
    for build, key, cn in ((b.reply_request, "QnRtn", "9011"),
                           (b.reply_execution, "ExeRtn", "9012")):
        reply = parse_frame(build(command, code))
        assert reply.ok and reply.cn == cn and reply.extra == {key: str(code)}
        assert (reply.mn, reply.qn, reply.needs_ack) == (mn, QN, False)
