"""The poison-pill policy alone (``contract.input_rules``): what is refused and why, and how
failures are classified (permanent: dead letter; retryable: retry while the outage lasts;
unknown: a bounded number of retries)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, RequestTimedOutError
from pydantic import ValidationError

from contract.input_rules import (
    InputError,
    Retry,
    check_number,
    check_text,
    check_time,
    classify,
    clean_context,
    clean_text,
    known_code,
    split_reading,
    truncate_raw,
)
from contract.records import Reading
from contract.settings import Settings

NOW = datetime(2026, 12, 6, tzinfo=UTC)
LIVE = Settings(_env_file=None, time_window_past_days=366)  # type: ignore[call-arg]


def test_text_rules() -> None:
    assert check_text("a34004", "code", 64) == "a34004"
    for bad, why in (("", "empty"), ("a" * 65, "over"), ("a\x00", "NUL"), ("a\ud800", "surrogate"),
                     ("a\nb", "control"), (3, "not text")):
        with pytest.raises(InputError, match=why):
            check_text(bad, "code", 64)
    assert clean_text("X\x00\udc80Y") == "X\\x00\\udc80Y"
    assert clean_context({"mn\x00": ["a\x00"], "v": float("nan")}) == {"mn\\x00": ["a\\x00"],
                                                                       "v": "nan"}


def test_numbers_and_codes() -> None:
    assert check_number(35, "v", 1e12) == 35.0
    for bad in (True, "35", float("nan"), float("inf"), 1e13, 10**400):
        with pytest.raises(InputError):
            check_number(bad, "v", 1e12)
    assert known_code("a34004") and known_code("w01018") and known_code("01")  # 2005: dust
    assert known_code("a05024") and known_code("SB1") and known_code("x1", {"x1"})
    assert not any(known_code(c) for c in ("zzz999", "", "<script>", "a34004\x00", "SBx"))


def test_times() -> None:
    check_time(NOW - timedelta(days=30), "t", LIVE, NOW)
    with pytest.raises(InputError, match="outside"):
        check_time(NOW - timedelta(days=400), "t", LIVE, NOW)
    with pytest.raises(InputError, match="outside"):
        check_time(NOW + timedelta(hours=2), "t", LIVE, NOW)
    check_time(datetime(1990, 1, 1, tzinfo=UTC), "t")  # offline: 1970..2100 only
    far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14)))
    for bad in (far, datetime(1, 1, 1, tzinfo=UTC), datetime(2100, 1, 2, tzinfo=UTC)):
        with pytest.raises(InputError):
            check_time(bad, "t")
    with pytest.raises(InputError, match="UTC offset"):
        check_time(datetime(2026, 1, 1), "t")


def test_split_reading_keeps_valid_codes() -> None:
    r = Reading(station="S1", time=NOW - timedelta(hours=1),
                values={"a34004": 1.0, "zzz999": 2.0, "a21026\x00": 3.0}, flags={"zzz999": "N"})
    kept, refused = split_reading(r, LIVE, now=NOW)
    assert kept is not None and kept.values == {"a34004": 1.0} and kept.flags == {}
    assert len(refused) == 2 and any("NUL" in why for why in refused)
    with pytest.raises(InputError, match="no usable values"):
        split_reading(r.model_copy(update={"values": {}}), LIVE, now=NOW)
    with pytest.raises(InputError, match="interval_s"):
        split_reading(r.model_copy(update={"interval_s": 10**30}), LIVE, now=NOW)
    restart = Reading(station="S1", time=NOW, values={}, event="restart")
    assert split_reading(restart, LIVE, now=NOW) == (restart, [])


def test_truncate_raw() -> None:
    assert truncate_raw(b"abc", 10) == (b"abc", {})
    kept, whole = truncate_raw(b"x" * 20, 10)
    assert kept == b"x" * 10 and whole["raw_bytes"] == 20 and whole["raw_truncated"]


def test_classify_and_bounded_retry() -> None:
    with pytest.raises(ValidationError) as invalid:
        Reading.model_validate({})
    permanent = [MessageSizeTooLargeError(), InputError("x"), invalid.value,
                 psycopg.errors.CharacterNotInRepertoire("invalid byte sequence 0x00"),
                 psycopg.errors.NotNullViolation("null"),
                 UnicodeEncodeError("utf-8", "", 0, 1, "x")]
    retryable = [KafkaConnectionError(), RequestTimedOutError(), ConnectionRefusedError(),
                 TimeoutError(), psycopg.OperationalError("connection refused")]
    assert [classify(e) for e in permanent] == ["permanent"] * len(permanent)
    assert [classify(e) for e in retryable] == ["retryable"] * len(retryable)
    assert classify(RuntimeError("?")) == "unknown"
    retry = Retry("test", max_attempts=3, base_s=0.001)
    assert not retry.failed(KafkaConnectionError())  # an outage: retried while it lasts
    assert not any(retry.failed(RuntimeError()) for _ in range(2))
    assert retry.failed(RuntimeError())  # the third unknown failure gives up
    assert Retry("test", 3).failed(MessageSizeTooLargeError())  # permanent: at once
    asyncio.run(retry.wait())


def test_offline_tools_accept_old_data_but_not_far_times() -> None:
    """``offsite env analyze`` (JSON lines) applies the offline rule: 1970..2100, no window."""
    from detectors.env_contract import InputError as LineError
    from detectors.env_contract import read_jsonl

    line = '{{"station": "S", "time": "{}", "code": "a34004", "value": 1}}'
    assert len(list(read_jsonl([line.format("1990-01-01T00:00:00+08:00")]))) == 1
    for far in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+00:00"):
        with pytest.raises(LineError, match="line 1"):
            list(read_jsonl([line.format(far)]))
