"""Fusion and dedup of clues into cases, and the sinks that store routed clues and cases."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import psycopg

from contract.clue import Clue, EvidenceRef
from geo.routing import Router
from storage.db import open_pool
from storage.sinks import CasesSink, CluesSink
from streams import clues as F
from streams.publish import ClueExit
from tests.streams.conftest import FakeEvent, FakeMsg, FakeTable

T0 = datetime(2025, 6, 1, 8, tzinfo=UTC)
SITE = "gh:wx4g1h"
DONGSI = {"type": "Point", "coordinates": [116.417, 39.929]}


def clue(modality: str = "env", rule: str = "r1", start: datetime = T0, hours: float = 1,
         state: str = "open", confidence: float = 0.5, evidence: bool = False) -> Clue:
    return Clue(modality=modality, kind="exceedance", rule=rule, subject=f"{modality}-1",
                state=state, start=start, time=start + timedelta(hours=hours),
                confidence=confidence, location=DONGSI,
                evidence=[EvidenceRef(media_type="image/png", name="p.png", content=b"png")]
                if evidence else [])


def test_modalities_fuse_with_combined_confidence() -> None:
    case, is_open = F.fuse(None, clue("env", confidence=0.5, evidence=True), SITE, "d1")
    case, _ = F.fuse(case, clue("video", start=T0 + timedelta(hours=5), confidence=0.6), SITE)
    case, _ = F.fuse(case, clue("env", rule="r2", confidence=0.2), SITE)  # same modality
    assert is_open and case["case_id"] == f"case:{SITE}:20250601T080000Z"
    assert F.combined_confidence(case) == case["confidence"] == 0.8  # 1 - 0.5 * 0.4
    row = F.case_row(case)
    assert row["modalities"] == ["env", "video"] and len(row["clue_ids"]) == 3
    assert row["department"] == "d1" and row["location"] == DONGSI
    assert row["evidence"] == [{"clue_id": clue("env").clue_id, "name": "p.png",
                                "media_type": "image/png",
                                "sha256": hashlib.sha256(b"png").hexdigest()}]


def test_repeated_clues_of_one_episode_update_the_case() -> None:
    case, _ = F.fuse(None, clue(evidence=True), SITE)
    for state, hours in (("update", 2), ("update", 3), ("closed", 4)):
        case, _ = F.fuse(case, clue(state=state, hours=hours, evidence=True), SITE)
    assert len(case["clues"]) == 1 and len(case["evidence"]) == 1
    assert case["state"] == "closed" and case["version"] == 4
    assert case["last"] == (T0 + timedelta(hours=4)).timestamp()
    again, _ = F.fuse(case, clue(state="closed", hours=4), SITE)  # re-delivered
    assert F.case_row(again)["clue_ids"] == F.case_row(case)["clue_ids"]
    assert again["confidence"] == case["confidence"]


def test_evidence_sent_after_its_clue_reaches_the_case_without_reopening_it() -> None:
    """An env batch sends open and closed at once, then the open event again with its PNG:
    the case lists the PNG and the clue stays closed."""
    case, _ = F.fuse(None, clue(), SITE)
    case, _ = F.fuse(case, clue(state="closed", hours=4), SITE)
    assert case["evidence"] == [] and case["state"] == "closed"
    case, _ = F.fuse(case, clue(evidence=True), SITE)  # the open event, now with evidence
    assert case["state"] == "closed" and case["clues"][clue().clue_id]["state"] == "closed"
    assert [e["sha256"] for e in case["evidence"]] == [hashlib.sha256(b"png").hexdigest()]
    again, _ = F.fuse(case, clue(evidence=True), SITE)  # re-delivered: nothing added
    assert again["evidence"] == case["evidence"] and again["state"] == "closed"


def test_window_separates_cases_and_late_clue_keeps_open_case() -> None:
    case, _ = F.fuse(None, clue(), SITE)
    later, is_open = F.fuse(case, clue(rule="r9", start=T0 + timedelta(days=3)), SITE)
    assert is_open and later["case_id"] != case["case_id"] and len(later["clues"]) == 1
    late, is_open = F.fuse(later, clue(rule="r0", start=T0 - timedelta(days=5)), SITE)
    assert not is_open and late["case_id"] != later["case_id"]





def test_fusion_batch_and_sinks_write_idempotently(fresh_db: str) -> None:
    table, sink = FakeTable(), CasesSink()
    routed = ClueExit(None, Router.demo()).routed  # what the clue exit puts on the topic
    events = [FakeEvent(routed(c).model_dump_json().encode(), FakeMsg(1), SITE.encode())
              for c in (clue(evidence=True), clue("video", confidence=0.9),
                        clue(state="update", hours=2))]
    events.append(FakeEvent(b"{}", FakeMsg(1), SITE.encode()))  # invalid: skipped
    assert F.apply_events(events, table, sink, Router.demo()) == 3
    assert table.changelog == [(1, SITE)] * 3 and table.data[SITE]["version"] == 3
    clues_sink = CluesSink()  # no router: every clue arrives routed
    for c in (clue(), clue(state="update", hours=2)):
        clues_sink.add(routed(c))

    async def write() -> None:
        pool = await open_pool(fresh_db)
        try:
            rows = list(sink.rows)
            await sink.flush(pool)
            sink.rows = rows[:1]  # an older version re-delivered: must not win
            await sink.flush(pool)
            await clues_sink.flush(pool)
        finally:
            await pool.close()

    asyncio.run(write())
    with psycopg.connect(fresh_db) as conn:
        cases = conn.execute("SELECT case_id, site, modalities, clue_ids, confidence, version,"
                             " department, state FROM cases").fetchall()
        stored = conn.execute("SELECT site, department, jurisdiction, zones, state FROM clues"
                              ).fetchall()
    assert len(cases) == 1
    case_id, site, modalities, clue_ids, confidence, version, dept, state = cases[0]
    assert site == SITE and modalities == ["env", "video"] and len(clue_ids) == 2
    assert abs(confidence - 0.95) < 1e-9 and version == 3 and state == "open"
    assert dept == "110101-ecology-environment"
    assert stored == [(SITE, "110101-ecology-environment", "cn-110101",
                       [{"id": "cn-110101", "kind": "jurisdiction", "name": "Dongcheng District",
                         "overlap_m2": 0.0}], "update")]


def test_clues_sink_writes_the_clue_first_and_its_evidence_when_it_comes(fresh_db: str
                                                                         ) -> None:
    """A clue whose plot is still pending is written without evidence; the same clue sent
    again with the PNG changes nothing in the row or the events and fixes the PNG once,
    also when it is re-delivered."""
    routed = ClueExit(None, Router.demo()).routed
    waiting = clue()
    waiting.evidence = [EvidenceRef(media_type="image/png", name="p.png",
                                    pending={"series": {"title": "t"}})]
    drawn = clue(evidence=True)

    async def write(*clues: Clue) -> None:
        pool = await open_pool(fresh_db)
        try:
            sink = CluesSink()
            for c in clues:
                sink.add(routed(c))
            await sink.flush(pool)
        finally:
            await pool.close()

    def stored() -> tuple[list[tuple], list[tuple], list[tuple]]:
        with psycopg.connect(fresh_db) as conn:
            return (conn.execute("SELECT clue_id, state, time FROM clues").fetchall(),
                    conn.execute("SELECT clue_id, state FROM clue_events").fetchall(),
                    conn.execute("SELECT clue_id, name, sha256 FROM evidence").fetchall())

    asyncio.run(write(waiting))
    rows, events, evidence = stored()
    assert rows == [(waiting.clue_id, "open", waiting.time)] and evidence == []
    asyncio.run(write(drawn))
    asyncio.run(write(drawn))  # re-delivered after a crash
    assert stored()[:2] == (rows, events)
    assert stored()[2] == [(waiting.clue_id, "p.png", hashlib.sha256(b"png").hexdigest())]
