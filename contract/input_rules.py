"""The poison-pill policy: one set of input rules and one error classifier for every layer.

One bad input must never stop a pipeline. MQTT, HJ 212, the API and the offline tools
therefore validate with the same rules at the edge (sizes below every downstream limit,
text without NUL or lone surrogates, finite numbers in range, known codes, plausible
times), and every writer asks :func:`classify` what a failure means:

* ``permanent``: this input can never succeed (too large for the broker, a NUL the
  database refuses, a record that does not validate). Retrying would wedge the pipeline
  behind it, so the input goes to the dead-letter store with its raw bytes and the reason,
  and the pipeline moves on.
* ``retryable``: a service is away (connection refused, timeout). The input is kept (not
  acknowledged) and retried with back-off for as long as the outage lasts.
* ``unknown``: anything else; retried at most ``retry_max_attempts`` times, then treated
  as permanent, so a new kind of failure costs a few retries, never a stall.

Every retry and every dead letter is counted in Prometheus (``offsite_retries_total``,
``offsite_dead_letters_total``).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import math
import random
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from prometheus_client import Counter
from pydantic import ValidationError

from contract.records import Reading
from contract.settings import Settings

__all__ = ["OFFLINE_MAX", "OFFLINE_MIN", "InputError", "Retry", "check_number", "check_text",
           "check_time", "classify", "clean_context", "clean_text", "is_permanent",
           "known_code", "split_reading", "truncate_raw"]

RETRIES = Counter("offsite_retries_total", "Failed attempts that will be retried or given up",
                  ["where", "kind"])
DEAD_LETTERS = Counter("offsite_dead_letters_total", "Inputs sent to the dead-letter store",
                       ["where"])
#: what offline tools accept; live ingest and the API use a window around now inside it
OFFLINE_MIN = datetime(1970, 1, 1, tzinfo=UTC)
OFFLINE_MAX = datetime(2100, 1, 1, tzinfo=UTC)
#: HJ 212 equipment-status codes (``SB1``, ``SB12-RS``'s base): not pollutants, but defined
_EQUIPMENT = re.compile(r"SB[0-9]{1,6}")
_SURROGATE = re.compile("[\ud800-\udfff]")
Kind = Literal["permanent", "retryable", "unknown"]
_PLAIN_FLAGS = frozenset("NFMSDCBTHKPZ")  # HJ 212 data flags, checked without check_text


class InputError(ValueError):
    """An input that breaks a rule: it can never succeed, so it is kept, not retried."""


# ---- text and numbers ---------------------------------------------------------------------

def clean_text(value: object, limit: int | None = None) -> str:
    """A string any store accepts: NUL and lone surrogates escaped (``\\x00``, ``\\udc80``),
    cut to ``limit`` characters. For reasons and context of dead letters, never for data."""
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\0", "\\x00")
    if _SURROGATE.search(text):
        text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"...[{len(text) - limit} more]"
    return text


def clean_context(value: Any, limit: int = 1000) -> Any:
    """``clean_text`` applied through a JSON-like structure (keys too)."""
    if isinstance(value, Mapping):
        return {clean_text(k, 200): clean_context(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_context(v, limit) for v in value]
    if isinstance(value, str):
        return clean_text(value, limit)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def check_text(value: object, what: str, max_chars: int) -> str:
    """Text that is a string, not empty, at most ``max_chars`` long, without NUL, control
    characters or lone surrogates (PostgreSQL refuses NUL; UTF-8 refuses surrogates)."""
    if not isinstance(value, str):
        raise InputError(f"{what}: not text ({type(value).__name__})")
    if not value:
        raise InputError(f"{what}: empty")
    if len(value) > max_chars:
        raise InputError(f"{what}: {len(value)} characters, over {max_chars}")
    if "\0" in value:
        raise InputError(f"{what}: contains NUL")
    if _SURROGATE.search(value):
        raise InputError(f"{what}: contains a lone surrogate")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InputError(f"{what}: contains a control character")
    return value


def check_number(value: object, what: str, max_abs: float) -> float:
    """A real number: not a boolean (``true`` is not 1.0), not text, finite, ``|x| <= max``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{what}: not a number ({type(value).__name__})")
    number = float(value) if not isinstance(value, int) or abs(value) < 2 ** 1023 else math.inf
    if not math.isfinite(number):
        raise InputError(f"{what}: not a finite number")
    if abs(number) > max_abs:
        raise InputError(f"{what}: {number:g} is out of range (|x| <= {max_abs:g})")
    return number


# ---- codes ----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def standard_codes() -> frozenset[str]:
    """Codes HJ 212-2017 (Appendix B) or HJ/T 212-2005 define (``hj212_codes.csv``)."""
    path = Path(__file__).with_name("hj212_codes.csv")
    rows = (line for line in path.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#"))
    codes: set[str] = set()
    for row in csv.DictReader(rows):
        codes.update(c for c in (row["code"], row["code_2005"]) if c)
    return frozenset(codes)


def known_code(code: str, declared: Collection[str] = ()) -> bool:
    """A code of either standard, an ``SBxxx`` equipment code, or one the station declares."""
    return code in standard_codes() or bool(_EQUIPMENT.fullmatch(code)) or code in declared


# ---- times ----------------------------------------------------------------------------------

def check_time(moment: datetime, what: str, settings: Settings | None = None,
               now: datetime | None = None) -> datetime:
    """An aware time inside 1970..2100 and, when ``settings`` is given (live ingest, the
    API), inside ``[now - time_window_past_days, now + time_window_future_s]``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(f"{what}: no UTC offset")
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError) as exc:  # year 1 at -14:00, year 9999 at +14:00
        raise InputError(f"{what}: {moment.isoformat()} is out of range") from exc
    low, high = OFFLINE_MIN, OFFLINE_MAX
    if settings is not None:
        now = now or datetime.now(UTC)
        low = max(low, now - timedelta(days=min(settings.time_window_past_days, 100_000)))
        high = min(high, now + timedelta(seconds=min(settings.time_window_future_s, 1e10)))
    if not low <= utc <= high:
        raise InputError(f"{what}: {moment.isoformat()} is outside {low:%Y-%m-%d %H:%M} .. "
                         f"{high:%Y-%m-%d %H:%M} UTC")
    return moment


# ---- readings -------------------------------------------------------------------------------

def split_reading(reading: Reading, settings: Settings, *, declared: Collection[str] = (),
                  now: datetime | None = None, live: bool = True
                  ) -> tuple[Reading | None, list[str]]:
    """Check one reading; return it with only its valid codes, and why each other code was
    refused. ``InputError`` when the reading as a whole is unusable (station, time, interval,
    or no valid code left; a restart event needs no codes)."""
    limit = settings.max_text_chars
    check_text(reading.station, "station", min(limit, 64))
    check_time(reading.time, "time", settings if live else None, now)
    if reading.interval_s is not None and not 1 <= reading.interval_s <= 31 * 86400:
        raise InputError(f"interval_s: {reading.interval_s} is not 1..{31 * 86400} seconds")
    check_text(reading.source, "source", limit)
    refused: list[str] = []
    values: dict[str, float] = {}
    standard, top = standard_codes(), settings.max_abs_value
    for code, value in reading.values.items():
        # the common case at a few hundred ns: a standard code (plain ASCII) with a float
        if code in standard and type(value) is float and -top <= value <= top \
                and reading.flags.get(code, "N") in _PLAIN_FLAGS:
            values[code] = value
            continue
        try:
            check_text(code, "code", limit)
            if not known_code(code, declared):
                raise InputError(f"code {code!r}: not an HJ 212-2017/2005 or declared code")
            values[code] = check_number(value, f"values.{code}", settings.max_abs_value)
            if code in reading.flags:
                check_text(reading.flags[code], f"flags.{code}", 8)
        except InputError as exc:
            refused.append(clean_text(str(exc), 300))
    if not values and reading.event is None:
        why = "; ".join(refused) if refused else "no values"
        raise InputError(f"no usable values ({why})"[:1000])
    if len(values) == len(reading.values):
        return reading, refused
    flags = {c: f for c, f in reading.flags.items() if c in values}
    return reading.model_copy(update={"values": values, "flags": flags}), refused


def truncate_raw(raw: bytes, limit: int) -> tuple[bytes, dict[str, Any]]:
    """The bytes a dead letter keeps (the first ``limit``) and what describes the whole."""
    if len(raw) <= limit:
        return raw, {}
    return raw[:limit], {"raw_bytes": len(raw), "raw_sha256": hashlib.sha256(raw).hexdigest(),
                         "raw_truncated": True}


# ---- failures -------------------------------------------------------------------------------

def classify(exc: BaseException) -> Kind:
    """What a failure means for the input that caused it (see the module docstring)."""
    if isinstance(exc, InputError | ValidationError | UnicodeError | RecursionError):
        return "permanent"
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    if module.startswith("aiokafka"):
        if name in ("MessageSizeTooLargeError", "RecordTooLargeError", "InvalidTopicError",
                    "RecordListTooLargeError", "CorruptRecordException"):
            return "permanent"
        return "retryable" if getattr(exc, "retriable", False) or "Connection" in name \
            or "Timeout" in name or "TimedOut" in name else "unknown"
    if module.startswith("psycopg"):
        import psycopg  # a contract-layer module must not need the driver to be importable

        if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
            return "permanent"  # invalid byte sequence, out of range, NOT NULL, CHECK, FK
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return "retryable"
        return "unknown"
    if module.startswith("psycopg_pool") or isinstance(exc, ConnectionError | TimeoutError
                                                        | OSError | asyncio.TimeoutError):
        return "retryable"
    return "unknown"


def is_permanent(exc: BaseException) -> bool:
    return classify(exc) == "permanent"


class Retry:
    """Bounded retries of one input: ``failed(exc)`` counts a failure and says whether to give
    up (dead-letter the input); ``await wait()`` backs off. Outages retry while they last;
    unknown failures ``max_attempts`` times; permanent ones not at all."""

    def __init__(self, where: str, max_attempts: int, base_s: float = 0.5, cap_s: float = 30.0
                 ) -> None:
        self.where, self.max_attempts = where, max_attempts
        self.base_s, self.cap_s = base_s, cap_s
        self.delay = base_s
        self.unknown = 0

    def failed(self, exc: BaseException) -> bool:
        kind = classify(exc)
        RETRIES.labels(self.where, kind).inc()
        if kind == "unknown":
            self.unknown += 1
        return kind == "permanent" or self.unknown >= self.max_attempts

    async def wait(self) -> None:
        await asyncio.sleep(self.delay * (1 + random.random()))
        self.delay = min(self.delay * 2, self.cap_s)

    def reset(self) -> None:
        self.delay, self.unknown = self.base_s, 0


def dead_letter(where: str) -> None:
    """Count one input sent to the dead-letter store by ``where``."""
    DEAD_LETTERS.labels(where).inc()
