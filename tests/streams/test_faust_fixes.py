"""``streams.faust_fixes`` on the app's real Faust consumer (not started, no broker), and
guards on the Faust code the fixes assume: an upgrade that changes it fails here.

The end-to-end proof is ``tests/faults/test_fault_worker.py`` (worker SIGKILLed
mid-stream, nothing lost)."""

from __future__ import annotations

import asyncio
import inspect
import re

import faust
from aiokafka.consumer.fetcher import Fetcher
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.types import TP

from contract.settings import Settings
from streams.app import build_streams
from streams.faust_fixes import StreamHold

app = build_streams(Settings()).app  # every agent and table: their changelog topics

READINGS = TP("env.readings", 1)


def fresh_consumer() -> Consumer:
    """A new consumer of the app, built by the app's own factory (each test its own)."""
    return app._new_consumer()


def changelog_tp() -> TP:
    return TP(sorted(app.tables.changelog_topics)[0], 0)


def test_no_commit_past_an_unacked_head_offset() -> None:
    """faust-streaming#606: committed 82, acked 83..89 used to commit 90 (82 never
    processed). Now nothing is committed until 82 is acked, then 90."""
    c = fresh_consumer()
    c._committed_offset[READINGS] = 82
    c._acked[READINGS].extend(range(83, 90))
    c._acked_index[READINGS].update(range(83, 90))
    assert c._new_offset(READINGS) is None
    c._acked[READINGS].append(82)
    c._acked_index[READINGS].add(82)
    assert c._new_offset(READINGS) == 90


def test_known_absent_offsets_at_the_head_still_commit() -> None:
    c = fresh_consumer()
    c._committed_offset[READINGS] = 10
    c._gap[READINGS].addi(10, 13)  # 10, 11, 12 do not exist
    c._acked[READINGS].extend([13, 14])
    c._acked_index[READINGS].update([13, 14])
    assert c._new_offset(READINGS) == 15


def test_gap_excludes_the_record_being_delivered() -> None:
    """The drain loop calls ``_add_gap(tp, r_offset + 1, offset)`` for the record at
    ``offset``; only the offsets before it are absent."""
    c = fresh_consumer()
    asyncio.run(c._add_gap(READINGS, 11, 13))
    assert sorted((i.begin, i.end) for i in c._gap[READINGS]) == [(11, 13)]  # 11, 12
    asyncio.run(c._add_gap(READINGS, 20, 20))  # nothing missing before 20
    assert not c._gap[READINGS].at(20)


def test_stream_partitions_wait_for_seek_and_flow_resume() -> None:
    c = fresh_consumer()
    log = changelog_tp()
    c.pause_partitions({READINGS, log})
    c.resume_partitions({READINGS, log})
    active = c._get_active_partitions()
    assert log in active and READINGS not in active  # changelogs resume at once
    c.resume_flow()
    assert READINGS not in c._get_active_partitions()  # no seek yet: still held
    c.pause_partitions({READINGS})  # a new rebalance drops the hold
    assert not c.__dict__["_offsite_hold"].held


def test_hold_releases_only_after_a_seek_that_began_after_it() -> None:
    hold = StreamHold()
    hold.hold({READINGS})
    assert hold.release() == set()
    started = hold.epoch
    hold.on_seeked(started)
    assert hold.release() == {READINGS} and hold.release() == set()
    hold.hold({READINGS})
    early = hold.epoch
    hold.hold({TP("env.readings", 0)})  # held again while a seek was running
    hold.on_seeked(early)
    assert hold.release() == set()


def test_an_empty_partition_set_fetches_nothing() -> None:
    """aiokafka reads an empty set as "every partition"; the wrapper never passes one
    (the consumer argument is not even looked at)."""
    thread = fresh_consumer()._thread
    assert asyncio.run(thread._fetch_records(None, set(), timeout=1.0)) == {}


def order(src: str, *calls: str) -> list[int]:
    return [src.index(call) for call in calls]


def test_faust_code_the_fixes_assume() -> None:
    """If one of these fails after a Faust upgrade, re-check streams/faust_fixes.py (and
    drop what upstream fixed)."""
    assert faust.__version__ == "0.15.3"
    for method in (Recovery.on_recovery_completed, Recovery._resume_streams):
        src = inspect.getsource(method)
        pos = order(src, "consumer.resume_partitions(", "consumer.perform_seek()",
                    "flow_control.resume()", "consumer.resume_flow()")
        assert pos == sorted(pos), method.__name__
    drain = inspect.getsource(Consumer._drain_messages)
    assert "self._add_gap(tp, r_offset + 1, offset)" in drain
    gap = inspect.getsource(Consumer._add_gap.__wrapped__)
    assert "addi(offset_from, offset_to + 1)" in gap
    fetched = inspect.getsource(Fetcher.fetched_records)
    assert "if partitions and tp not in partitions" in fetched  # empty set = no filter
    new_offset = inspect.getsource(Consumer._new_offset.__wrapped__)
    assert re.search(r"min\(acked\) - committed_offset > 1", new_offset)
