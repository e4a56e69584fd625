"""The pure parts of issue 17: the draw algorithm (reproducible, exact inclusion
probabilities, caps, high-risk inclusion, inspector pairs) and joint-inspection grouping."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from oversight.draws import (
    Candidate,
    DrawError,
    DrawParams,
    capped_probabilities,
    draw,
    systematic_sample,
)
from oversight.joint import OpenTask, group

PARAMS = DrawParams({"A": 0.05, "B": 0.20, "C": 0.50, "D": 1.00},
                    {"low": 1.0, "medium": 1.5, "high": 2.0}, yearly_cap=4, high_risk_share=0.5)
ROSTER = ["insp-1", "insp-2", "insp-3", "insp-4"]
MARCH = (date(2027, 3, 1), date(2027, 3, 31))


def entities(per_class: int = 10) -> list[Candidate]:
    return [Candidate(f"{k}-{i:03d}", k) for k in "ABCD" for i in range(per_class)]


def test_same_seed_same_draw_other_seed_other_draw() -> None:
    one = draw(entities(), ROSTER, *MARCH, PARAMS, seed=42, count=8).as_rows()
    assert one == draw(entities(), ROSTER, *MARCH, PARAMS, seed=42, count=8).as_rows()
    assert one != draw(entities(), ROSTER, *MARCH, PARAMS, seed=43, count=8).as_rows()
    # the input order does not matter: candidates and roster are sorted first
    shuffled = list(reversed(entities()))
    assert one == draw(shuffled, ROSTER[::-1], *MARCH, PARAMS, seed=42, count=8).as_rows()


def test_pairs_dates_and_count() -> None:
    got = draw(entities(), ROSTER, *MARCH, PARAMS, seed=1, count=12)
    assert len(got.items) == 12 == len({i.entity for i in got.items})
    for item in got.items:
        assert item.inspectors[0] != item.inspectors[1]
        assert set(item.inspectors) <= set(ROSTER)
        assert MARCH[0] <= item.planned_date <= MARCH[1]
    with pytest.raises(DrawError):
        draw(entities(), ["alone"], *MARCH, PARAMS, seed=1)


def test_systematic_sampling_has_the_asked_inclusion_probabilities() -> None:
    """Over 20,000 seeded runs each unit's frequency is within 4 binomial standard errors
    (sqrt(p(1-p)/n)) of its probability; a unit of probability 0 is never drawn, 1 always."""
    pi = np.array([0.0, 0.05, 0.2, 0.5, 0.75, 1.0, 0.5])
    n = 20_000
    hits = np.zeros_like(pi)
    for seed in range(n):
        picked = systematic_sample(pi, np.random.default_rng(seed))
        assert len(set(picked)) == len(picked)
        hits[picked] += 1
    freq = hits / n
    se = np.sqrt(pi * (1 - pi) / n)
    assert np.all(np.abs(freq - pi) <= 4 * se + 1e-12), (freq, pi)


def test_capped_probabilities_sum_to_count() -> None:
    pi = capped_probabilities(np.array([100.0, 1.0, 1.0, 1.0, 0.0]), 3)
    assert pi[0] == 1.0 and pi[4] == 0.0
    assert pi.sum() == pytest.approx(3.0) and np.allclose(pi[1:4], 2 / 3)


def test_yearly_cap_and_high_risk_share() -> None:
    capped = [Candidate("D-cap", "D", drawn_this_year=4), Candidate("D-ok", "D")]
    for seed in range(50):
        got = draw(capped, ROSTER, *MARCH, PARAMS, seed=seed, count=2)
        assert [i.entity for i in got.items] == ["D-ok"]
    risky = [*entities(), Candidate("A-risk1", "A", "high", 0.9),
             Candidate("A-risk2", "A", "high", 0.8), Candidate("A-risk3", "A", "high", 0.1)]
    for seed in range(50):
        got = draw(risky, ROSTER, *MARCH, PARAMS, seed=seed, count=3)
        forced = {i.entity for i in got.items if i.reason == "high_risk"}
        # half of three high-risk entities, rounded up: the two highest scores, always
        assert forced == {"A-risk1", "A-risk2"}


def test_expected_count_follows_rates_and_period() -> None:
    got = draw(entities(), ROSTER, *MARCH, PARAMS, seed=3)
    assert got.expected_count == pytest.approx(10 * (0.05 + 0.2 + 0.5 + 1.0) * 31 / 365)


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2027, 3, day, hour, tzinfo=UTC)


def test_joint_groups_need_two_departments_and_a_common_window() -> None:
    tasks = [
        OpenTask(1, "eco", "E1", at(1), at(31), inspection_id=10, planned_date=date(2027, 3, 12)),
        OpenTask(2, "nat", "E1", at(10), at(13)),                  # clue task inside the draw
        OpenTask(3, "eco", "E2", at(1), at(31), inspection_id=11),  # alone: no joint
        OpenTask(4, "eco", "E3", at(1), at(5)),
        OpenTask(5, "nat", "E3", at(6), at(9)),                     # windows do not meet
    ]
    groups = group(tasks, utc_offset_hours=8)
    assert len(groups) == 1
    g = groups[0]
    assert (g.entity, g.task_ids, g.departments, g.inspection_ids) == \
        ("E1", (1, 2), ("eco", "nat"), (10,))
    assert (g.start, g.end) == (at(10), at(13))
    assert g.visit_date == date(2027, 3, 12)  # the draw's published date lies in the window
    late = group([OpenTask(1, "eco", "E1", at(1), at(31), 10, date(2027, 3, 2)),
                  OpenTask(2, "nat", "E1", at(10), at(13) + timedelta(hours=1))])
    assert late[0].visit_date == date(2027, 3, 10)  # else the common window's first day
