"""Risk per regulated entity on a real PostgreSQL, checked against the formula as the README
documents it (the expected numbers are worked out here from the documented defaults, not
taken from the implementation):

    points = review x ((weight(kind) + 0.5 x gap_days) x 0.5^(age_days / 30) + 1 x open)

weights: replay 3, exceedance 2, offline 1; review: none 1, confirmed 2, not_found 0.5,
false_positive 0; levels: medium from 5, high from 15.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from oversight.risk import RiskWeights
from storage import risk
from tests.risk_world import ES1_ZONES, add_clue, import_world, set_result

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)
W = RiskWeights()


def seed_score() -> float:
    return 2 * 0.5 + (3 * 1 + 1) + (1 + 0.5 * 2) * 0.5 ** (10 / 30)


def seed(db: str) -> float:
    """Three clues of E-1 (by its station, by its zone, a gap), one of E-2, one of nobody;
    returns E-1's expected score at NOW."""
    # by its station: an exceedance one half-life old, closed
    add_clue(db, "c-exc", kind="exceedance", subject="LX-9001", start=NOW - 31 * DAY,
             time=NOW - 30 * DAY, end=NOW - 30 * DAY)
    # by its enterprise-site zone (a camera of no entity would not link it): replay, open now
    add_clue(db, "c-rep", kind="replay", subject="LX-0001", start=NOW - DAY, time=NOW,
             state="open", zones=ES1_ZONES)
    # a 2-day monitoring gap that ended 10 days ago
    add_clue(db, "c-off", kind="offline", subject="LX-9001", start=NOW - 12 * DAY,
             time=NOW - 10 * DAY, end=NOW - 10 * DAY)
    # E-2's station; and an ambient station's clue outside every entity
    add_clue(db, "c-e2", kind="exceedance", subject="HX-9001", start=NOW - DAY, time=NOW,
             end=NOW, department="370103-ecology-environment")
    add_clue(db, "c-none", kind="exceedance", subject="LX-0001", start=NOW - DAY, time=NOW)
    return seed_score()


def compute(db: str, now: datetime = NOW, ids: list[str] | None = None) -> dict:
    with psycopg.connect(db) as conn:
        return {r.entity: r for r in risk.recompute(conn, ids, now, W, 0.5)}


def stored(db: str, entity: str) -> tuple:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT score, level, contributions, clues FROM entity_risk"
                            " WHERE entity = %s", (entity,)).fetchone()


@pytest.fixture()
def world(fresh_db: str, tmp_path: Path) -> str:
    import_world(fresh_db, tmp_path)
    return fresh_db


def test_score_is_the_documented_sum(world: str) -> None:
    expected = seed(world)
    got = compute(world)
    assert set(got) == {"E-1", "E-2", "E-3"}
    assert got["E-1"].risk.score == pytest.approx(expected)
    assert got["E-2"].risk.score == pytest.approx(2 * 1.0)
    assert got["E-3"].risk.score == 0 and got["E-3"].risk.level == "low"
    score, level, contributions, clues = stored(world, "E-1")
    assert score == pytest.approx(expected) and level == "medium" and clues == 3
    # the contributions name the clues behind the score, largest first
    assert [c["clue_id"] for c in contributions] == ["c-rep", "c-off", "c-exc"]
    assert contributions[0]["points"] == pytest.approx(4.0)
    assert contributions[1]["gap_days"] == pytest.approx(2.0)
    assert contributions[2]["decay"] == pytest.approx(0.5)


def test_confirmed_weighs_double_false_positive_nothing(world: str) -> None:
    before = seed(world)
    compute(world)
    with psycopg.connect(world) as conn:  # the report queues the entity for a recompute
        conn.execute("DELETE FROM entity_risk_dirty")
        conn.commit()
    set_result(world, "c-exc", "confirmed")
    with psycopg.connect(world) as conn:
        assert [r[0] for r in conn.execute("SELECT entity FROM entity_risk_dirty")] == ["E-1"]
        taken, done = risk.recompute_queued(conn, NOW, W, 0.5)
        assert taken == 1 and risk.queued(conn) == 0
    assert done[0].risk.score == pytest.approx(before + 2 * 0.5)  # 2 x 2 x 0.5 instead of 2 x 0.5
    set_result(world, "c-rep", "false_positive")
    with psycopg.connect(world) as conn:
        risk.recompute_queued(conn, NOW, W, 0.5)
    score, level, contributions, _ = stored(world, "E-1")
    assert score == pytest.approx(before + 1.0 - 4.0)
    assert level == "low"
    assert "c-rep" not in [c["clue_id"] for c in contributions]
    assert next(c for c in contributions if c["clue_id"] == "c-exc")["result"] == "confirmed"
    set_result(world, "c-off", "not_found")
    score = compute(world, ids=["E-1"])["E-1"].risk.score
    assert score == pytest.approx(2 * 2 * 0.5 + 0.5 * (1 + 0.5 * 2) * 0.5 ** (10 / 30))


def test_recency_decay_halves_old_terms(world: str) -> None:
    seed(world)
    later = compute(world, NOW + 30 * DAY)["E-1"].risk.score
    # every decayed term halves after one more half-life; the open clue's 1 stays
    assert later == pytest.approx(2 * 0.25 + 3 * 0.5 + 1 + 2 * 0.5 ** (40 / 30))
    assert later < compute(world, NOW)["E-1"].risk.score


def test_gaps_count_by_their_length(world: str) -> None:
    add_clue(world, "g-short", kind="signal_loss", subject="LX-CAM-1", modality="video",
             start=NOW - 2 * DAY, time=NOW - DAY, end=NOW - DAY)
    short = compute(world)["E-1"].risk.score
    assert short == pytest.approx((1 + 0.5 * 1) * 0.5 ** (1 / 30))
    # an open gap lasts until now; the same clue later re-written as still open for 7 days
    add_clue(world, "g-short", kind="signal_loss", subject="LX-CAM-1", modality="video",
             start=NOW - 2 * DAY, time=NOW - DAY, state="open")
    assert compute(world)["E-1"].risk.score == pytest.approx(
        (1 + 0.5 * 2) * 0.5 ** (1 / 30) + 1)
    # gaps count at most 30 days
    add_clue(world, "g-long", kind="offline", subject="LX-9001", start=NOW - 100 * DAY,
             time=NOW, end=NOW)
    assert compute(world)["E-1"].risk.score == pytest.approx(
        (1 + 0.5 * 2) * 0.5 ** (1 / 30) + 1 + (1 + 0.5 * 30))


def test_changes_queue_the_entities_they_touch(world: str) -> None:
    with psycopg.connect(world) as conn:
        conn.execute("DELETE FROM entity_risk_dirty")
        conn.commit()
    add_clue(world, "q-amb", kind="exceedance", subject="LX-0001", start=NOW, time=NOW)
    add_clue(world, "q-cam", kind="person", subject="LX-CAM-1", modality="video", start=NOW,
             time=NOW)
    add_clue(world, "q-e2", kind="exceedance", subject="HX-9001", start=NOW, time=NOW,
             state="open")
    with psycopg.connect(world) as conn:
        assert sorted(r[0] for r in conn.execute("SELECT entity FROM entity_risk_dirty")) == [
            "E-1", "E-2"]
        taken, done = risk.recompute_queued(conn, NOW, W, 0.5)
        assert taken == 2 and sorted(d.entity for d in done) == ["E-1", "E-2"]
        # moving a station to another entity queues both
        conn.execute("UPDATE stations SET entity = 'E-3' WHERE id = 'HX-9001'")
        assert sorted(r[0] for r in conn.execute("SELECT entity FROM entity_risk_dirty")) == [
            "E-2", "E-3"]
        conn.commit()
        risk.recompute_queued(conn, NOW, W, 0.5)
    assert stored(world, "E-3")[0] == pytest.approx(2 + 1)  # the open exceedance moved along
    assert stored(world, "E-2")[0] == 0


def test_history_keeps_moves_only(world: str) -> None:
    seed(world)
    compute(world)
    compute(world, NOW + timedelta(minutes=5))  # nothing moved: no second row
    set_result(world, "c-rep", "confirmed")
    compute(world, NOW + timedelta(minutes=10))
    with psycopg.connect(world) as conn:
        rows = conn.execute("SELECT computed_at, level FROM entity_risk_history"
                            " WHERE entity = 'E-1' ORDER BY computed_at").fetchall()
    assert [r[0] for r in rows] == [NOW, NOW + timedelta(minutes=10)]
    assert [r[1] for r in rows] == ["medium", "medium"]


def test_a_recompute_that_dies_leaves_its_entities_queued(world: str) -> None:
    """Two API instances share the queue (SKIP LOCKED), and one that dies mid-way (its
    transaction rolls back) leaves the entities queued for the next drain."""
    seed(world)
    with psycopg.connect(world) as first, psycopg.connect(world) as second:
        with first.transaction(force_rollback=True):  # dies before commit
            taken, done = risk.recompute_queued(first, NOW, W, 0.5)  # imported and clued
            assert taken == 3 and {d.entity for d in done} == {"E-1", "E-2", "E-3"}
            assert risk.recompute_queued(second, NOW, W, 0.5) == (0, [])  # held: skipped
            second.commit()
        assert risk.queued(second) == 3
        assert second.execute("SELECT count(*) FROM entity_risk").fetchone() == (0,)
        taken, done = risk.recompute_queued(second, NOW, W, 0.5)
        assert taken == 3 and risk.queued(second) == 0
    assert stored(world, "E-1")[0] == pytest.approx(seed_score())


def test_the_clues_sink_batches_queue_their_entities(world: str) -> None:
    """The stream's own write path (COPY into staging, INSERT ... ON CONFLICT DO UPDATE):
    a batch queues the entities of its clues, by zone and by station; a redelivered or
    updated batch queues them again."""
    import asyncio

    from contract.clue import Clue
    from storage.db import open_pool
    from storage.sinks import CluesSink

    route = {"site": "es-1", "department": "370102-ecology-environment",
             "jurisdiction": {"id": "cn-370102"}, "zones": ES1_ZONES}
    clues = [Clue(modality="video", kind="person", rule="zone/yard/person", subject="CAM-X",
                  state="open", start=NOW - DAY, time=NOW - DAY, route=route),
             Clue(modality="env", kind="exceedance", rule="r1", subject="HX-9001",
                  state="open", start=NOW - DAY, time=NOW - DAY,
                  route={**route, "site": "cell", "zones": []})]

    async def write(batch: list[Clue]) -> None:
        sink = CluesSink()
        for c in batch:
            sink.add(c)
        pool = await open_pool(world)
        try:
            await sink.flush(pool)
        finally:
            await pool.close()

    def queued_now() -> list[str]:
        with psycopg.connect(world) as conn:
            return sorted(r[0] for r in conn.execute(
                "DELETE FROM entity_risk_dirty RETURNING entity"))

    queued_now()
    asyncio.run(write(clues))
    assert queued_now() == ["E-1", "E-2"]
    asyncio.run(write([c.model_copy(update={"state": "closed", "time": NOW, "end": NOW})
                       for c in clues]))
    assert queued_now() == ["E-1", "E-2"]
    got = compute(world)
    assert got["E-1"].risk.score == pytest.approx(1 * 1.0)  # a person, closed now
    assert got["E-2"].risk.score == pytest.approx(2 * 1.0)
