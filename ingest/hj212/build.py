"""Build HJ 212 frames: host replies and commands, and data uploads from readings.

Everything here produces complete frames (``##`` + length + segment + CRC + CRLF) with
the standard's Appendix A CRC, so whatever we send a device passes its own check. The
caller supplies QN (``make_qn``): the module reads no clock, which keeps it pure and
lets a reply carry the QN of the request it answers, as the standard requires.
Values that would break the frame's syntax (``;``, ``,``, ``=``, ``&``, line breaks) are
refused with :class:`HJ212Error` instead of being sent mangled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime, tzinfo
from decimal import Decimal

from contract.records import Reading
from ingest.hj212.codec import CHINA_TZ, DATA_COMMANDS, MAX_SEGMENT, Frame, HJ212Error
from ingest.hj212.crc import crc_hj212, format_crc

__all__ = ["data_frame", "data_frames", "encode_frame", "flag_value", "format_number",
           "format_time", "get_time", "make_qn", "reply_data", "reply_execution", "reply_request",
           "segment", "set_rtd_interval", "set_time"]

_VERSION_BITS = {"2005": 0, "2017": 1, "2025": 2}
_PERIOD_CN = {period: cn for cn, (period, _) in DATA_COMMANDS.items()}
_UNSAFE = re.compile(r"[;,=&\r\n]")
_CODE = re.compile(r"[^;,=&\-\s]+")
MAX_LENGTH = 9999


def _safe(name: str, value: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value or _UNSAFE.search(value) \
            or (pattern is not None and not pattern.fullmatch(value)):
        raise HJ212Error(f"{name} {value!r} cannot be put in a frame")
    return value


def encode_frame(seg: str) -> str:
    """Wrap a data segment: ``##`` + 4-digit UTF-8 byte length + segment + CRC + CRLF."""
    data = seg.encode("utf-8")
    if len(data) > MAX_LENGTH:
        raise HJ212Error(f"segment of {len(data)} bytes does not fit a 4-digit length")
    return f"##{len(data):04d}{seg}{format_crc(crc_hj212(data))}\r\n"


def flag_value(version: str = "2017", *, ack: bool = False, packets: bool = False) -> int:
    """Flag = V5..V0 D A (see codec's docstring for the 2025 assumption)."""
    if version not in _VERSION_BITS:
        raise HJ212Error(f"unknown version {version!r}")
    return (_VERSION_BITS[version] << 2) | (int(packets) << 1) | int(ack)


def segment(*, cn: str, mn: str, st: str, pw: str, qn: str | None = None,
            flag: int | None = None, pnum: int | None = None, pno: int | None = None,
            cp: Iterable[str] = ()) -> str:
    """Assemble a data segment from header fields and ready-made CP items."""
    parts = []
    if qn is not None:
        parts.append(f"QN={_safe('QN', qn)}")
    parts += [f"ST={_safe('ST', st)}", f"CN={_safe('CN', cn)}", f"PW={_safe('PW', pw)}",
              f"MN={_safe('MN', mn)}"]
    if flag is not None:
        if not 0 <= flag <= 255:
            raise HJ212Error(f"Flag {flag} outside 0..255")
        parts.append(f"Flag={flag}")
    if pnum is not None and pno is not None:
        parts += [f"PNUM={pnum}", f"PNO={pno}"]
    return ";".join(parts) + ";CP=&&" + ";".join(cp) + "&&"


def make_qn(moment: datetime, tz: tzinfo = CHINA_TZ) -> str:
    """QN = YYYYMMDDhhmmsszzz in ``tz`` (the standard's local time)."""
    local = moment.astimezone(tz) if moment.tzinfo else moment
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"


def format_time(moment: datetime, tz: tzinfo = CHINA_TZ) -> str:
    """YYYYMMDDhhmmss in ``tz``; sub-second parts are dropped (the standard has none)."""
    if moment.tzinfo is None:
        raise HJ212Error("naive datetime: the frame's local time would be a guess")
    local = moment.astimezone(tz)
    if local.year < 1000:
        raise HJ212Error(f"year {local.year} does not fit YYYY")
    return local.strftime("%Y%m%d%H%M%S")


def format_number(value: float) -> str:
    """Plain decimal (no exponent, shortest round-tripping digits): devices and peers parse
    ``N14.2``-style numbers, not ``1e-05``."""
    if not math.isfinite(value):
        raise HJ212Error(f"{value} cannot be sent")
    return format(Decimal(repr(float(value))), "f")


def _reply_header(request: Frame) -> dict[str, str]:
    mn = request.mn
    if not mn:
        raise HJ212Error("cannot answer a frame without MN")
    version = request.version if request.version in _VERSION_BITS else "2017"
    return {"mn": mn, "pw": request.header.get("PW", "123456"),
            "qn": request.qn, "flag": flag_value(version)}  # type: ignore[dict-item]


def _rtn(name: str, code: int) -> str:
    if not isinstance(code, int) or not 0 <= code <= 999:
        raise HJ212Error(f"{name} {code!r} is not an N3 code")
    return f"{name}={code}"


def reply_request(request: Frame, qn_rtn: int = 1, *, st: str = "91") -> str:
    """CN 9011 request answer (QnRtn: 1 ready to execute, 2 refused, 3 bad PW, ...)."""
    h = _reply_header(request)
    return encode_frame(segment(cn="9011", st=st, pw=h["pw"], mn=h["mn"], qn=h["qn"],
                                flag=h["flag"], cp=[_rtn("QnRtn", qn_rtn)]))


def reply_execution(request: Frame, exe_rtn: int = 1, *, st: str = "91") -> str:
    """CN 9012 execution result (ExeRtn: 1 success, 2 failed, ..., 100 no data)."""
    h = _reply_header(request)
    return encode_frame(segment(cn="9012", st=st, pw=h["pw"], mn=h["mn"], qn=h["qn"],
                                flag=h["flag"], cp=[_rtn("ExeRtn", exe_rtn)]))


def reply_data(data: Frame, *, st: str = "91") -> str:
    """CN 9014 data answer with an empty CP, echoing the upload's QN (when it had one)."""
    h = _reply_header(data)
    return encode_frame(segment(cn="9014", st=st, pw=h["pw"], mn=h["mn"], qn=h["qn"],
                                flag=h["flag"]))


def set_rtd_interval(*, mn: str, pw: str, qn: str, interval_s: int, st: str = "32",
                     version: str = "2017") -> str:
    """CN 1062: set the real-time upload interval (30..3600 s per table 4)."""
    if not isinstance(interval_s, int) or not 30 <= interval_s <= 3600:
        raise HJ212Error(f"RtdInterval {interval_s!r} outside 30..3600 s")
    return encode_frame(segment(cn="1062", st=st, pw=pw, mn=mn, qn=qn,
                                flag=flag_value(version, ack=True),
                                cp=[f"RtdInterval={interval_s}"]))


def get_time(*, mn: str, pw: str, qn: str, st: str = "32", pol_id: str | None = None,
             version: str = "2017") -> str:
    """CN 1011: ask the logger (or one instrument, ``PolId``) for its clock."""
    cp = [f"PolId={_safe('PolId', pol_id, _CODE)}"] if pol_id is not None else []
    return encode_frame(segment(cn="1011", st=st, pw=pw, mn=mn, qn=qn,
                                flag=flag_value(version, ack=True), cp=cp))


def set_time(*, mn: str, pw: str, qn: str, system_time: datetime, st: str = "32",
             pol_id: str | None = None, version: str = "2017",
             tz: tzinfo = CHINA_TZ) -> str:
    """CN 1012: set the logger's clock to ``system_time`` (sent as local time in ``tz``)."""
    cp = [f"PolId={_safe('PolId', pol_id, _CODE)}"] if pol_id is not None else []
    cp.append(f"SystemTime={format_time(system_time, tz)}")
    return encode_frame(segment(cn="1012", st=st, pw=pw, mn=mn, qn=qn,
                                flag=flag_value(version, ack=True), cp=cp))


def _reading_items(reading: Reading, value_field: str) -> list[str]:
    """One CP item per code: ``code-Rtd=v,code-Flag=f`` (Avg for aggregated periods)."""
    codes = list(reading.values) + [c for c in reading.flags if c not in reading.values]
    items = []
    for code in codes:
        _safe("code", code, _CODE)
        subs = []
        if code in reading.values:
            subs.append(f"{code}-{value_field}={format_number(reading.values[code])}")
        if code in reading.flags:
            subs.append(f"{code}-Flag={_safe('flag', reading.flags[code], _CODE)}")
        items.append(",".join(subs))
    return items


def data_frames(reading: Reading, *, st: str = "32", pw: str = "123456",
                qn: str | None = None, ack: bool = False, version: str = "2017",
                tz: tzinfo = CHINA_TZ, max_segment: int = MAX_SEGMENT) -> list[str]:
    """Upload frames for a reading (CN from its period), split into sub-packets (Flag D,
    PNUM/PNO, same DataTime) when one segment would exceed ``max_segment`` bytes."""
    cn = _PERIOD_CN[reading.period]
    items = _reading_items(reading, DATA_COMMANDS[cn][1])
    time_item = f"DataTime={format_time(reading.time, tz)}"
    common = {"cn": cn, "st": st, "pw": pw, "mn": reading.station, "qn": qn}
    whole = segment(**common, flag=flag_value(version, ack=ack), cp=[time_item, *items])
    if len(whole.encode("utf-8")) <= max_segment:
        return [encode_frame(whole)]
    # Pack greedily against a header sized for the widest PNUM/PNO we allow.
    base = len(segment(**common, flag=flag_value(version, ack=ack, packets=True),
                       pnum=9999, pno=9999, cp=[time_item]).encode("utf-8"))
    groups: list[list[str]] = [[]]
    size = base
    for item in items:
        cost = len(item.encode("utf-8")) + 1
        if base + cost > max_segment:
            raise HJ212Error(f"one CP item alone exceeds {max_segment} bytes")
        if size + cost > max_segment:
            groups.append([])
            size = base
        groups[-1].append(item)
        size += cost
    if len(groups) > 9999:
        raise HJ212Error("too many sub-packets")
    flag = flag_value(version, ack=ack, packets=True)
    return [encode_frame(segment(**common, flag=flag, pnum=len(groups), pno=n,
                                 cp=[time_item, *group]))
            for n, group in enumerate(groups, start=1)]


def data_frame(reading: Reading, *, st: str = "32", pw: str = "123456",
               qn: str | None = None, ack: bool = False, version: str = "2017",
               tz: tzinfo = CHINA_TZ) -> str:
    """One upload frame for a reading, however long (up to the 4-digit length limit)."""
    frames = data_frames(reading, st=st, pw=pw, qn=qn, ack=ack, version=version, tz=tz,
                         max_segment=MAX_LENGTH)
    if len(frames) != 1:
        raise HJ212Error("reading does not fit one frame; use data_frames")
    return frames[0]
