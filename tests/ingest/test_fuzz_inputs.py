"""A small run of the decoder fuzzer (``bench/fuzz_inputs.py``; the bench run does 100,000
cases per decoder): no crash, and every input accepted or rejected with a reason."""

from __future__ import annotations

from bench.fuzz_inbox import fuzz_inbox
from bench.fuzz_inputs import fuzz_hj212, fuzz_json
from contract.settings import Settings
from ingest.mqtt import PayloadError, decode_message


def test_hj212_parser_fuzz_has_no_crash_and_accounts_for_every_input() -> None:
    tally = fuzz_hj212(2000, seed_value=7)
    assert not tally.crashes, tally.report()
    assert tally.total == 2000 and tally.accounted()
    assert tally.n_rejected > 100 and tally.n_accepted > 100
    assert sum(n for r, n in tally.accepted.items() if r.startswith("reading")) > 0


def test_json_decoder_fuzz_has_no_crash_and_accounts_for_every_input() -> None:
    tally = fuzz_json(2000, seed_value=7)
    assert not tally.crashes, tally.report()
    assert tally.total == 2000 and tally.accounted()
    assert tally.n_rejected > 100 and tally.n_accepted > 100
    assert all("NaN" not in reason for reason in tally.accepted), tally.accepted


def _reason(payload: bytes) -> str:
    try:
        decoded = decode_message("offsite/env/S1/json", payload, Settings(), live=False)
    except PayloadError as exc:
        return str(exc)
    if decoded.readings or not decoded.refused:
        raise AssertionError(f"accepted {payload[:60]!r}")
    return decoded.refused[0]


def test_json_decoder_refuses_what_once_crashed_or_leaked() -> None:
    """Found by the fuzzer: deep nesting (RecursionError) and an over-long integer
    (ValueError) escaped as non-PayloadError exceptions, which the ingester took for a Kafka
    failure and retried forever without acking; NaN/Infinity values were accepted and then
    went on the wire as null, which the consumer cannot decode."""
    assert _reason(b"[" * 100_000 + b"]" * 100_000).startswith("not JSON")
    assert _reason(b'{"time": "2026-01-01T00:00:00+08:00", "values": {"a": ' + b"1" * 5000
                   + b"}}").startswith("not JSON")
    for bad in (b"NaN", b"Infinity", b"-Infinity", b"1e999"):
        reason = _reason(b'{"time": "2026-01-01T00:00:00+08:00", "values": {"a34004": '
                         + bad + b"}}")
        assert reason == "item 0: values.a34004: not a finite number", reason
    for bad in (b'"NaN"', b'"35"', b"true"):  # text and booleans are not numbers
        reason = _reason(b'{"time": "2026-01-01T00:00:00+08:00", "values": {"a34004": '
                         + bad + b"}}")
        assert reason == "item 0: values.a34004: not a number", reason


def test_satellite_inbox_fuzz_reads_nothing_outside_and_has_no_crash() -> None:
    """STAC Items with hostile hrefs (``..``, absolute, ``file://``, ``/vsicurl/`` to a local
    listener, symlinks and a VRT pointing out of the inbox) and odd structure: each is
    accepted without a pixel read from outside the inbox, or rejected with a reason; no
    network connection is made (``bench/fuzz_inbox.py``; the bench run does 5,000)."""
    tally = fuzz_inbox(400, seed_value=7)
    assert not tally.crashes, tally.report()
    assert tally.total == 400 and tally.accounted() and tally.connections == 0
    assert tally.accepted > 10 and sum(tally.rejected.values()) > 100
    assert any("outside" in r or "leaves" in r for r in tally.rejected), tally.report()
