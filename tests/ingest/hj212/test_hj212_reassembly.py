"""Sub-packet reassembly: resends, changed PNUM, bounded memory, expiry by data time."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from contract.records import Reading
from ingest.hj212 import Reassembler, parse_frame, to_reading
from ingest.hj212 import build as b
from ingest.hj212.codec import Frame

CST = timezone(timedelta(hours=8))


def _parts(station: str = "S1", minute: int = 0, codes: int = 30) -> list[Frame]:
    reading = Reading(station=station, time=datetime(2024, 5, 1, 10, minute, tzinfo=CST),
                      period="minute", values={f"a{i:05d}": i / 4 for i in range(codes)},
                      flags={f"a{i:05d}": "N" for i in range(codes)}, source="hj212")
    frames = [parse_frame(f) for f in b.data_frames(reading, max_segment=300)]
    assert len(frames) > 2
    return frames


def test_plain_frames_pass_through() -> None:
    frame = parse_frame(b.set_rtd_interval(mn="M", pw="1", qn="1", interval_s=60))
    assert Reassembler().add(frame) is frame


def test_resend_and_bad_packet_mark_the_whole() -> None:
    parts = _parts()
    joiner = Reassembler()
    assert joiner.add(parts[0]) is None and joiner.add(parts[0]) is None
    assert joiner.duplicates == 1
    broken = parse_frame(parts[1].raw.replace(parts[1].crc_sent + "\r\n", "0000\r\n"))
    assert broken.packet == parts[1].packet and not broken.ok
    for part in [broken, *parts[2:-1]]:
        assert joiner.add(part) is None
    whole = joiner.add(parts[-1])
    assert whole is not None and not whole.ok and whole.error.startswith("packet 2:")
    assert "PNUM" not in whole.header and whole.crc_variant is None
    assert len(whole.values) == 30 and len(joiner) == 0


def test_changed_pnum_abandons_old_set() -> None:
    parts = _parts()
    joiner = Reassembler()
    joiner.add(parts[0])
    header = parts[1].header | {"PNUM": "9"}
    joiner.add(dataclasses.replace(parts[1], header=header))
    assert [len(s) for s in joiner.drain_incomplete()] == [1]
    assert joiner.drain_incomplete() == []


def test_bounded_and_expiring() -> None:
    joiner = Reassembler(max_groups=2)
    for minute in range(4):
        joiner.add(_parts(minute=minute)[0])
    assert len(joiner) == 2 and len(joiner.drain_incomplete()) == 2
    stale = joiner.expire(datetime(2024, 5, 1, 10, 3, tzinfo=CST))
    assert len(stale) == 1 and len(joiner) == 1
    rest = _parts(minute=3)
    outs = [joiner.add(p) for p in rest[1:]]
    assert outs[-1] is not None and to_reading(outs[-1]).time.minute == 3


def test_interleaved_stations() -> None:
    a, c = _parts("A"), _parts("C")
    joiner = Reassembler()
    outs = [o for pair in zip(a, c, strict=False) for p in pair if (o := joiner.add(p))]
    outs += [o for p in a[len(c):] + c[len(a):] if (o := joiner.add(p))]
    assert sorted(o.mn or "" for o in outs) == ["A", "C"]
