"""The risk formula alone (pure, no database): the monotonicity the README promises, for any
clues (hypothesis), and the levels at the documented thresholds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from oversight.risk import KIND_WEIGHTS, ClueFact, RiskWeights, score

NOW = datetime(2026, 6, 1, tzinfo=UTC)
W = RiskWeights()

clue = st.builds(
    lambda i, kind, state, age_h, length_h, result: ClueFact(
        clue_id=f"c{i}", kind=kind, modality="env", subject="S", state=state,
        start=NOW - timedelta(hours=age_h + length_h), time=NOW - timedelta(hours=age_h),
        end=None if state != "closed" else NOW - timedelta(hours=age_h), result=result),
    st.integers(0, 10**6), st.sampled_from([*KIND_WEIGHTS, "unknown_kind"]),
    st.sampled_from(["open", "update", "closed"]), st.floats(0, 24 * 400),
    st.floats(0, 24 * 60), st.sampled_from([None, "confirmed", "not_found", "false_positive"]))
clues = st.lists(clue, max_size=12, unique_by=lambda c: c.clue_id)


@settings(max_examples=200, deadline=None)
@given(clues, clue)
def test_another_clue_never_lowers_the_score(history, extra) -> None:  # type: ignore[no-untyped-def]
    history = [c for c in history if c.clue_id != extra.clue_id]
    assert score([*history, extra], NOW, W).score >= score(history, NOW, W).score


@settings(max_examples=200, deadline=None)
@given(clues, st.floats(0, 24 * 365))
def test_time_only_lowers_the_score(history, hours) -> None:  # type: ignore[no-untyped-def]
    later = NOW + timedelta(hours=hours)
    closed = [c for c in history if c.state == "closed"]  # an open gap grows until closed
    assert score(closed, later, W).score <= score(closed, NOW, W).score + 1e-9


@settings(max_examples=200, deadline=None)
@given(clues, clue)
def test_review_orders_a_clue(history, one) -> None:  # type: ignore[no-untyped-def]
    history = [c for c in history if c.clue_id != one.clue_id]
    by = {r: score([*history, ClueFact(**{**one.__dict__, "result": r})], NOW, W).score
          for r in (None, "confirmed", "not_found", "false_positive")}
    assert by["false_positive"] <= by["not_found"] <= by[None] <= by["confirmed"]
    assert abs(by["false_positive"] - score(history, NOW, W).score) < 1e-9  # weighs nothing


def test_levels_and_overrides() -> None:
    assert [W.level(x) for x in (0, 4.99, 5, 14.99, 15)] == [
        "low", "low", "medium", "medium", "high"]
    custom = RiskWeights.with_overrides({"exceedance": 5})
    assert custom.weight("exceedance") == 5 and custom.weight("replay") == 3
    assert custom.weight("never_heard_of") == 1
