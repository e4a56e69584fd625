"""Fixes to faust-streaming's offset book-keeping that at-least-once delivery depends on.

Without them a worker restarted mid-stream lost one reading in about 4 runs in 10
(RELIABILITY.md, "Worker SIGKILL"). Faults in Faust 0.15.3 that combine into a loss:

1. **Recovery lets stream partitions fetch before their queues are cleared**
   (faust-streaming/faust#596, open upstream). ``Recovery.on_recovery_completed`` resumes
   the stream partitions, *then* awaits the seek to the committed offsets, *then* calls
   ``flow_control.resume()``, which empties every agent's queue. When the fetcher is
   already running (it is whenever a table had to be restored from its changelog, or a
   first rebalance came before), records fetched during the seek reach the agents' queues,
   the fetcher's read offset moves past them, and the clear throws away whatever an agent
   had not taken yet. The re-fetch from the committed offset is then dropped as already
   read ("DROPPED MESSAGE ROFF"), so the thrown-away record is never processed.
   Fix: resuming a stream partition is held back until a seek to the committed offsets
   has finished *and* the flow is resumed (after the clear); nothing of a held partition
   is fetched, so the first record an agent sees is the committed one. The seek also
   resets the acked/gap book-keeping of the held partitions: nothing of them was
   processed in this generation, so whatever is there is left over from the previous one
   (for example a stale message that Faust's stream iterator skipped *and* acked).

2. **An empty partition set fetches every partition.** Faust hands aiokafka its *live*
   set of active partitions; aiokafka's ``fetched_records`` reads an empty set as "no
   filter". When the set empties while a fetch waits (recovery pauses the changelog
   partitions before the stream partitions are resumed), aiokafka returns records of
   paused partitions, Faust drops them because they are not active, and aiokafka's
   position has moved past them: nothing re-reads them. Fix: aiokafka gets a snapshot,
   and no fetch at all when it is empty.

3. **Committing past an un-acked head offset** (faust-streaming/faust#606, fix proposed
   in PR #707). ``Consumer._new_offset`` refuses to commit only when the lowest acked
   offset is more than one past the committed offset, so a single missing offset right
   at the head (the record thrown away in 1.) is committed over. Fix: a commit must start
   at the committed offset itself, either acked or known to be absent (a gap).
   Faust's ``_add_gap`` also marks the offset of the record being delivered as absent
   (``_add_gap(tp, r_offset + 1, offset)`` with an inclusive end), so that record could be
   committed before any agent processed it; the end is made exclusive.

Cost of 3.: a head offset that truly does not exist (a transaction marker, a compacted or
expired record right at the committed offset) now holds commits back instead of being
skipped; the readings topics are written without transactions and with delete retention,
so it does not arise here. Holding back is safe: the records stay in Kafka and are
re-read after a restart (idempotent writes).

``apply()`` checks that the installed faust-streaming is the version these fixes were made
for (``FAUST_VERSION``; anything else is refused at run time, not silently patched) and
patches the classes once; ``streams.app.build_streams`` calls it before the app is built.
``tests/streams/test_faust_fixes.py`` checks the patched behaviour and that the Faust code
these fixes assume is unchanged, so an upgrade that changes it fails loudly.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Iterable
from typing import Any

from faust.transport.consumer import Consumer, ensure_TPset
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

_APPLIED = False


class StreamHold:
    """Stream partitions whose resumption waits for a seek and a flow resume.

    One per consumer. ``epoch`` counts holds, so that a seek that started before the
    latest hold does not count as the seek for it.
    """

    def __init__(self) -> None:
        self.held: set[TP] = set()
        self.epoch = 0
        self.seeked_epoch = -1

    def hold(self, tps: set[TP]) -> None:
        if tps - self.held:
            self.epoch += 1
        self.held |= tps

    def drop(self, tps: set[TP]) -> None:
        self.held -= tps

    def on_seeked(self, started_epoch: int) -> None:
        if started_epoch == self.epoch:
            self.seeked_epoch = started_epoch

    def release(self) -> set[TP]:
        """The held partitions, if a seek after the latest hold has finished."""
        if not self.held or self.seeked_epoch != self.epoch:
            return set()
        released, self.held = self.held, set()
        return released


def _hold(consumer: Any) -> StreamHold:
    hold = consumer.__dict__.get("_offsite_hold")
    if hold is None:
        hold = consumer.__dict__["_offsite_hold"] = StreamHold()
    return hold


FAUST_VERSION = "0.15.3"


def apply() -> None:
    """Patch faust's Consumer (idempotent); refuses a Faust it was not made for."""
    global _APPLIED
    if _APPLIED:
        return
    installed = importlib.metadata.version("faust-streaming")
    if installed != FAUST_VERSION:
        raise RuntimeError(
            f"streams/faust_fixes.py patches faust-streaming {FAUST_VERSION}, but "
            f"{installed} is installed: check the patched code against the new version "
            "(tests/streams/test_faust_fixes.py) before changing FAUST_VERSION")
    _APPLIED = True

    orig_resume_partitions = Consumer.resume_partitions
    orig_pause_partitions = Consumer.pause_partitions
    orig_perform_seek = Consumer.perform_seek
    orig_resume_flow = Consumer.resume_flow
    orig_new_offset = Consumer._new_offset
    orig_add_gap = Consumer._add_gap
    orig_fetch_records = AIOKafkaConsumerThread._fetch_records

    @functools.wraps(orig_resume_partitions)
    def resume_partitions(self: Consumer, tps: Iterable[TP]) -> None:
        tpset = ensure_TPset(tps)
        stream = {tp for tp in tpset if not self._is_changelog_tp(tp)}
        if stream:
            _hold(self).hold(stream)
            self._get_active_partitions().difference_update(stream)
        orig_resume_partitions(self, tpset - stream)

    @functools.wraps(orig_pause_partitions)
    def pause_partitions(self: Consumer, tps: Iterable[TP]) -> None:
        tpset = ensure_TPset(tps)
        _hold(self).drop(tpset)
        orig_pause_partitions(self, tpset)

    @functools.wraps(orig_perform_seek)
    async def perform_seek(self: Consumer) -> None:
        hold = _hold(self)
        started = hold.epoch
        await orig_perform_seek(self)
        for tp in hold.held:  # paused since the assignment: nothing of them is processed
            self._acked.pop(tp, None)
            self._acked_index.pop(tp, None)
            self._gap.pop(tp, None)
        hold.on_seeked(started)

    @functools.wraps(orig_resume_flow)
    def resume_flow(self: Consumer) -> None:
        orig_resume_flow(self)
        released = _hold(self).release()
        if released:
            orig_resume_partitions(self, released)

    @functools.wraps(orig_new_offset)
    def _new_offset(self: Consumer, tp: TP) -> int | None:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None:
            head, gaps, nxt = min(acked), self._gap[tp], committed
            while nxt < head:  # skip offsets known to be absent
                spans = gaps.at(nxt)
                if not spans:
                    return None  # `nxt` is neither acked nor absent: not committable
                nxt = max(span.end for span in spans)
        return orig_new_offset(self, tp)

    @functools.wraps(orig_add_gap)
    async def _add_gap(self: Consumer, tp: TP, offset_from: int, offset_to: int) -> None:
        # the drain loop passes the offset being delivered as `offset_to`: exclude it
        if offset_to - 1 >= offset_from:
            await orig_add_gap(self, tp, offset_from, offset_to - 1)

    @functools.wraps(orig_fetch_records)
    async def _fetch_records(self: AIOKafkaConsumerThread, consumer: Any,
                             active_partitions: set[TP] | None, timeout: float | None = None,
                             max_records: int | None = None) -> Any:
        if active_partitions is not None:
            active_partitions = set(active_partitions)  # a snapshot, not the live set
            if not active_partitions:
                return {}  # aiokafka reads an empty set as "every partition"
        return await orig_fetch_records(self, consumer, active_partitions, timeout=timeout,
                                        max_records=max_records)

    AIOKafkaConsumerThread._fetch_records = _fetch_records  # type: ignore[method-assign]
    Consumer.resume_partitions = resume_partitions  # type: ignore[method-assign]
    Consumer.pause_partitions = pause_partitions  # type: ignore[method-assign]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    Consumer.resume_flow = resume_flow  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Consumer._add_gap = _add_gap  # type: ignore[method-assign]
