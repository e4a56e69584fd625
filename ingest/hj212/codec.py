"""Parse HJ/T 212-2005, HJ 212-2017 and HJ 212-2025 frames.

A frame is ``##`` + 4-digit decimal length of the data segment (UTF-8 bytes) + segment +
4 hex CRC + CRLF. Real devices break almost every rule of that (Modbus CRC, miscounted or
over-long lengths, lower-case hex, bare LF, missing ``Flag``, malformed headers), and a
regulator must see what a device sent rather than lose it. So the parser works in two
tiers:

* input that is not recognisably a frame (no ``##``, no 4-digit length, no hex CRC at the
  end, not UTF-8) raises :class:`HJ212Error` -- the only exception this module raises;
* anything else becomes a :class:`Frame` parsed as far as it goes. Deviations from the
  standard that make the content doubtful are listed in ``Frame.problems`` (then
  ``Frame.ok`` is False); harmless ones in ``Frame.notes``.

``ok`` means "conforms to the standard's framing and header rules": standard CRC, declared
length equal to the counted UTF-8 bytes, header fields known and present. A length
mismatch therefore makes a frame not ok, like a Modbus CRC: both checks are listed side by
side in the samples' ``verified`` field, and an operator wants a device that miscounts to
show up, while the values are still parsed and delivered. Segments over 1024 bytes whose
length is counted right are *not* a problem (real devices send them; only a note).

Version (Flag bits ``V5..V0 D A``, i.e. ``V = Flag >> 2``): no Flag or V=0 is 2005, V=1 is
2017 (the standard's text), V=2 is taken as 2025 -- DOMAIN.md reports one implementation
that encodes 2025 as version "base 8" (Flag 8..11), and a sample frame with Flag=8 exists;
the 2025 text has not been seen, so this is a documented assumption. Other V values give
version None with a note. The module is pure: no I/O, no clock reads.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from contract.records import Reading
from ingest.hj212.crc import CrcVariant, classify_crc, crc_hj212, format_crc

__all__ = ["CHINA_TZ", "DATA_COMMANDS", "HEADER_FIELDS", "Frame", "HJ212Error", "Value",
           "parse_data_time", "parse_frame", "to_reading", "version_of_flag"]

CHINA_TZ = timezone(timedelta(hours=8), "UTC+08:00")
MAX_SEGMENT = 1024
HEADER_FIELDS = ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO")
REQUIRED_FIELDS = ("CN", "MN")
NUMERIC_FIELDS = frozenset({"Rtd", "Avg", "Min", "Max", "Cou", "ZsRtd", "ZsAvg", "ZsMin",
                            "ZsMax", "ZsCou", "Data", "DayData", "NightData"})
TEXT_FIELDS = frozenset({"Flag", "EFlag", "SampleTime"})
#: CN of a data upload -> (Reading.period, the CP field that carries the value).
DATA_COMMANDS: dict[str, tuple[str, str]] = {
    "2011": ("rtd", "Rtd"), "2051": ("minute", "Avg"), "2061": ("hour", "Avg"),
    "2031": ("day", "Avg"),
}
_VERSIONS = {0: "2005", 1: "2017", 2: "2025"}
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_FRAME = re.compile(r"##([0-9]{4})(.*)([0-9A-Fa-f]{4})", re.DOTALL)
_DIGITS = re.compile(r"[0-9]+")

Value = float | str


class HJ212Error(ValueError):
    """Input that cannot be read as an HJ 212 frame, or a request the codec cannot honour."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One parsed frame; header strings exactly as sent, CP values typed."""

    raw: str
    segment: str
    declared_length: int
    actual_length: int
    crc_sent: str
    crc_computed: str
    crc_variant: CrcVariant | None
    header: dict[str, str]
    version: str | None
    data_time: datetime | None
    values: dict[str, dict[str, Value]]
    extra: dict[str, str]
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    ends_crlf: bool = True
    data_time_text: str | None = None

    @property
    def ok(self) -> bool:
        """True when the frame conforms to the standard's framing and header rules."""
        return not self.problems

    @property
    def error(self) -> str | None:
        """The problems as one short reason, or None."""
        return "; ".join(self.problems) or None

    @property
    def crc_valid(self) -> bool:
        return self.crc_variant == "hj212"

    @property
    def length_valid(self) -> bool:
        return self.declared_length == self.actual_length

    @property
    def cn(self) -> str | None:
        return self.header.get("CN")

    @property
    def mn(self) -> str | None:
        return self.header.get("MN")

    @property
    def qn(self) -> str | None:
        return self.header.get("QN")

    @property
    def flag(self) -> int | None:
        """Flag as an integer, or None when absent or not a number in 0..255."""
        text = self.header.get("Flag")
        if text is None or not _DIGITS.fullmatch(text) or int(text) > 255:
            return None
        return int(text)

    @property
    def needs_ack(self) -> bool:
        """A bit: the sender wants a 9011/9014 answer."""
        flag = self.flag
        return flag is not None and bool(flag & 1)

    @property
    def packet(self) -> tuple[int, int] | None:
        """(PNO, PNUM) when both are valid integers, else None."""
        pno, pnum = self.header.get("PNO"), self.header.get("PNUM")
        if pno is None or pnum is None or not _DIGITS.fullmatch(pno) \
                or not _DIGITS.fullmatch(pnum):
            return None
        return int(pno), int(pnum)

    def to_json_dict(self) -> dict[str, Any]:
        """The CLI's one-line-per-frame contract (keys fixed, see ``offsite hj212 parse``)."""
        out: dict[str, Any] = {
            "ok": self.ok, "error": self.error, "crc_valid": self.crc_valid,
            "crc_variant": self.crc_variant, "length_valid": self.length_valid,
            "version": self.version,
        }
        for name in HEADER_FIELDS:
            out[name] = self.header.get(name)
        out["data_time"] = self.data_time.isoformat() if self.data_time else None
        out["values"] = {code: dict(fields) for code, fields in self.values.items()}
        out["extra"] = dict(self.extra)
        return out


def version_of_flag(flag: int | None) -> str | None:
    """Standard version from a Flag value (None = no Flag sent, which is 2005 practice)."""
    if flag is None:
        return "2005"
    return _VERSIONS.get(flag >> 2)


def parse_data_time(text: str, tz: tzinfo = CHINA_TZ) -> datetime:
    """Parse ``YYYYMMDDhhmmss`` (2017) or ``YYYYMMDDhhmmsszzz`` (2005 practice) in ``tz``."""
    if not _DIGITS.fullmatch(text) or len(text) not in (14, 17):
        raise HJ212Error(f"bad DataTime {text!r}")
    try:
        moment = datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]),
                          int(text[10:12]), int(text[12:14]), tzinfo=tz)
    except ValueError as exc:
        raise HJ212Error(f"bad DataTime {text!r}") from exc
    if len(text) == 17:
        moment = moment.replace(microsecond=int(text[14:17]) * 1000)
    return moment


def _split_frame(raw: str | bytes) -> tuple[str, str, str, str, bool]:
    """Cut a line into (text, length digits, segment, CRC text, ended with CRLF)."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HJ212Error("not UTF-8 text") from exc
    elif isinstance(raw, str):
        text = raw
    else:
        raise HJ212Error(f"expected str or bytes, got {type(raw).__name__}")
    ends_crlf = text.endswith("\r\n")
    body = text.rstrip("\r\n")
    if not body.startswith("##"):
        raise HJ212Error("not a frame: no '##' header")
    match = _FRAME.fullmatch(body)
    if match is None:
        if not re.match(r"##[0-9]{4}", body):
            raise HJ212Error("not a frame: no 4-digit length after '##'")
        raise HJ212Error("not a frame: no 4-hex-digit CRC at the end")
    return text, match.group(1), match.group(2), match.group(3), ends_crlf


def _parse_header(text: str, problems: list[str]) -> dict[str, str]:
    """Header items ``KEY=value;``; names are case-sensitive (6.3.3.2.1), so ``FLAG`` or
    ``,MN`` are reported, not guessed at."""
    header: dict[str, str] = {}
    for item in text.split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            problems.append(f"header item without '=': {item[:40]!r}")
        elif key not in HEADER_FIELDS:
            problems.append(f"unknown header field {key[:40]!r}")
        elif key in header:
            problems.append(f"repeated header field {key}")
        else:
            header[key] = value
    for key in REQUIRED_FIELDS:
        if key not in header:
            problems.append(f"missing {key}")
    return header


def _check_flag(header: dict[str, str], problems: list[str], notes: list[str]) -> str | None:
    """Validate Flag/PNUM/PNO and return the version they imply."""
    flag_text = header.get("Flag")
    flag: int | None = None
    if flag_text is not None:
        if not _DIGITS.fullmatch(flag_text) or int(flag_text) > 255:
            problems.append(f"bad Flag {flag_text[:20]!r}")
            return None
        flag = int(flag_text)
    version = version_of_flag(flag)
    if version is None:
        notes.append(f"unknown version bits {flag >> 2 if flag is not None else None}")
    pno, pnum = header.get("PNO"), header.get("PNUM")
    if flag is not None and flag & 2 and (pno is None or pnum is None):
        problems.append("Flag D bit set but PNUM/PNO missing")
    if pno is not None or pnum is not None:
        if pno is None or pnum is None or not _DIGITS.fullmatch(pno) \
                or not _DIGITS.fullmatch(pnum) or not 1 <= int(pno) <= int(pnum):
            problems.append(f"bad PNUM/PNO {pnum!r}/{pno!r}")
    return version


def _typed(field_name: str, value: str, notes: list[str], key: str) -> Value:
    if field_name in NUMERIC_FIELDS:
        if _NUMBER.fullmatch(value):
            number = float(value)
            if math.isfinite(number):
                return number
        notes.append(f"non-numeric {key}={value[:20]!r}")
    return value


def _parse_cp(text: str, tz: tzinfo, problems: list[str], notes: list[str]
              ) -> tuple[dict[str, dict[str, Value]], dict[str, str], datetime | None,
                         str | None]:
    """Items split by ';', sub-fields by ',', key and value by '='."""
    values: dict[str, dict[str, Value]] = {}
    extra: dict[str, str] = {}
    data_time: datetime | None = None
    data_time_text: str | None = None
    seen: set[str] = set()
    for item in text.split(";"):
        for part in item.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep:
                problems.append(f"CP item without '=': {part[:40]!r}")
                continue
            if key in seen:
                notes.append(f"repeated CP key {key[:40]}")
            seen.add(key)
            code, dash, field_name = key.rpartition("-")
            if key == "DataTime":
                data_time_text = value
                try:
                    data_time = parse_data_time(value, tz)
                except HJ212Error as exc:
                    problems.append(str(exc))
            elif dash and code and field_name in NUMERIC_FIELDS | TEXT_FIELDS:
                values.setdefault(code, {})[field_name] = _typed(field_name, value, notes, key)
            else:
                extra[key] = value
    return values, extra, data_time, data_time_text


def parse_frame(raw: str | bytes, *, tz: tzinfo = CHINA_TZ) -> Frame:
    """Parse one frame (one line, CRLF, LF or no ending). DataTime is read in ``tz``.

    Raises :class:`HJ212Error` only when the input is not recognisably a frame; every
    other defect is reported on the returned :class:`Frame`.
    """
    text, length_digits, segment, crc_text, ends_crlf = _split_frame(raw)
    try:
        seg_bytes = segment.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise HJ212Error("not encodable as UTF-8") from exc
    problems: list[str] = []
    notes: list[str] = []
    declared, actual = int(length_digits), len(seg_bytes)
    if declared != actual:
        problems.append(f"length mismatch: declared {declared}, counted {actual} bytes")
    if actual > MAX_SEGMENT:
        notes.append(f"segment over {MAX_SEGMENT} bytes")
    computed = format_crc(crc_hj212(seg_bytes))
    variant = classify_crc(seg_bytes, crc_text)
    if variant is None:
        problems.append(f"CRC mismatch: sent {crc_text}, standard gives {computed}")
    elif variant == "modbus":
        problems.append(f"CRC is CRC-16/MODBUS, not the standard's ({computed})")
    elif variant == "modbus-swapped":
        problems.append(f"CRC is byte-swapped CRC-16/MODBUS, not the standard's ({computed})")
    if crc_text != crc_text.upper():
        notes.append("lower-case CRC")
    if not ends_crlf:
        notes.append("no CRLF at the end")

    start = segment.find("CP=&&")
    if start < 0:
        problems.append("no CP=&&...&& section")
        header_text, cp_text = segment, ""
    else:
        header_text, cp_text = segment[:start], segment[start + 5:]
        if cp_text.endswith("&&"):
            cp_text = cp_text[:-2]
        else:
            problems.append("CP not closed with '&&'")
    header = _parse_header(header_text, problems)
    version = _check_flag(header, problems, notes)
    values, extra, data_time, data_time_text = _parse_cp(cp_text, tz, problems, notes)
    if header.get("CN") in DATA_COMMANDS and data_time is None and data_time_text is None:
        notes.append("data frame without DataTime")
    return Frame(raw=text, segment=segment, declared_length=declared, actual_length=actual,
                 crc_sent=crc_text, crc_computed=computed, crc_variant=variant,
                 header=header, version=version, data_time=data_time, values=values,
                 extra=extra, problems=tuple(problems), notes=tuple(notes),
                 ends_crlf=ends_crlf, data_time_text=data_time_text)


def to_reading(frame: Frame, *, strict: bool = False) -> Reading:
    """Map a data frame (CN 2011/2051/2061/2031) to a :class:`contract.records.Reading`.

    CN 2011 takes each code's ``Rtd``, the others its ``Avg``; codes stay as sent (2005
    codes are not translated). Policy: a reading needs content some CRC vouches for, so a
    frame whose CRC matches no known variant is refused; frames that are only non-standard
    (Modbus CRC, miscounted length) are accepted unless ``strict``, which requires ``ok``.
    """
    if strict and not frame.ok:
        raise HJ212Error(f"frame not ok: {frame.error}")
    if frame.crc_variant is None:
        raise HJ212Error("CRC matches no known algorithm")
    mapping = DATA_COMMANDS.get(frame.cn or "")
    if mapping is None:
        raise HJ212Error(f"CN {frame.cn!r} is not a data upload")
    period, value_field = mapping
    station = frame.mn
    if not station or len(station) > 64:
        raise HJ212Error(f"unusable MN {station!r}")
    if frame.data_time is None:
        raise HJ212Error("data frame without a valid DataTime")
    values: dict[str, float] = {}
    flags: dict[str, str] = {}
    for code, fields in frame.values.items():
        value = fields.get(value_field)
        if isinstance(value, float):
            values[code] = value
        flag = fields.get("Flag")
        if isinstance(flag, str):
            flags[code] = flag
    return Reading(station=station, time=frame.data_time, period=period,  # type: ignore[arg-type]
                   values=values, flags=flags, source="hj212")

