"""Join HJ 212 sub-packets (Flag D bit, PNUM/PNO) back into one logical frame.

A logger splits an upload over 1024 bytes into PNUM packets that share MN, CN and
DataTime; only the whole set describes the instant, so detectors must see them merged.
Packets may arrive out of order, twice (resends) or never; the reassembler is pure and
bounded: it keeps at most ``max_groups`` incomplete sets, evicting the oldest, and the
caller expires sets by data time (:meth:`Reassembler.expire`) -- no clock is read here.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from ingest.hj212.codec import Frame

__all__ = ["GroupKey", "Reassembler", "merge_packets"]

GroupKey = tuple[str | None, str | None, str | None]
_CRC_RANK = {"hj212": 0, "modbus": 1, "modbus-swapped": 2, None: 3}


def merge_packets(parts: list[Frame]) -> Frame:
    """Merge a complete, PNO-ordered set of packets into one frame.

    The result keeps the first packet's header minus PNUM/PNO (it is no longer one of
    several), the union of values and extra keys, every packet's problems (prefixed
    with its PNO) and the worst CRC variant, so one bad packet makes the whole not ok.
    """
    first = parts[0]
    values: dict[str, dict[str, float | str]] = {}
    extra: dict[str, str] = {}
    problems: list[str] = []
    notes: list[str] = [f"reassembled from {len(parts)} packets"]
    for n, part in enumerate(parts, start=1):
        for code, fields in part.values.items():
            values.setdefault(code, {}).update(fields)
        extra.update(part.extra)
        problems += [f"packet {n}: {p}" for p in part.problems]
        notes += [f"packet {n}: {p}" for p in part.notes]
    header = {k: v for k, v in first.header.items() if k not in ("PNUM", "PNO")}
    worst = max((p.crc_variant for p in parts), key=lambda v: _CRC_RANK[v])
    return dataclasses.replace(
        first, raw="".join(p.raw for p in parts), segment="".join(p.segment for p in parts),
        declared_length=sum(p.declared_length for p in parts),
        actual_length=sum(p.actual_length for p in parts),
        crc_variant=worst, header=header, values=values, extra=extra,
        problems=tuple(problems), notes=tuple(notes), ends_crlf=all(p.ends_crlf for p in parts))


class Reassembler:
    """Collect sub-packets by (MN, CN, DataTime); emit the merged frame when complete."""

    def __init__(self, max_groups: int = 1024) -> None:
        self.max_groups = max_groups
        self._groups: dict[GroupKey, dict[int, Frame]] = {}
        self._totals: dict[GroupKey, int] = {}
        self.incomplete: list[list[Frame]] = []
        """Sets given up on (evicted, expired or superseded), for the caller to drain."""
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._groups)

    @staticmethod
    def key(frame: Frame) -> GroupKey:
        return frame.mn, frame.cn, frame.data_time_text

    def add(self, frame: Frame) -> Frame | None:
        """Feed one frame; return a frame to process now, or None while waiting.

        Frames that are not valid sub-packets pass straight through, as does a set of one.
        A resent PNO replaces the earlier copy; a PNUM that changes mid-set abandons the
        old set (moved to :attr:`incomplete`).
        """
        packet = frame.packet
        if packet is None or not 1 <= packet[0] <= packet[1]:
            return frame
        pno, pnum = packet
        if pnum == 1:
            return merge_packets([frame])
        key = self.key(frame)
        if key in self._groups and self._totals[key] != pnum:
            self.incomplete.append(self._drop(key))
        group = self._groups.setdefault(key, {})
        self._totals[key] = pnum
        if pno in group:
            self.duplicates += 1
        group[pno] = frame
        if len(group) == pnum:
            return merge_packets(self._drop(key))
        while len(self._groups) > self.max_groups:
            self.incomplete.append(self._drop(next(iter(self._groups))))
        return None

    def expire(self, before: datetime) -> list[list[Frame]]:
        """Give up on sets whose DataTime is before ``before`` (or unknown); return them."""
        stale = [k for k, g in self._groups.items()
                 if (t := next(iter(g.values())).data_time) is None or t < before]
        return [self._drop(k) for k in stale]

    def drain_incomplete(self) -> list[list[Frame]]:
        """Return and forget the sets given up on by eviction or PNUM change."""
        out, self.incomplete = self.incomplete, []
        return out

    def _drop(self, key: GroupKey) -> list[Frame]:
        group = self._groups.pop(key)
        self._totals.pop(key, None)
        return [group[n] for n in sorted(group)]
