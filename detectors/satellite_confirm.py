"""Multi-look confirmation of satellite change alerts, per tile (pure; state is plain data).

Why: one acquisition is noisy (haze, unmasked cloud edges, a harvested field); alert
systems such as GLAD and OPERA DIST-ALERT only trust a change seen again. Rules:

* a new change polygon is an alert of confidence ``low`` (its clue confidence is halved);
* each later acquisition of the tile is one *look*: it agrees with an alert when a change
  polygon found against the alert's own baseline (the scene before the change, not the
  latest scene, where the change would no longer show) overlaps the alert;
* the alert is ``confirmed`` when ``confirm_looks`` of the next ``window_looks`` looks
  agree (default 2 of the next 4; ``confirm_looks=1`` confirms on the first agreeing look);
* it is ``expired`` when the window is used up, or when a look comes more than
  ``expire_days`` after the alert, without confirmation.

The state of a tile is a JSON-able dict kept in a Faust table keyed by tile. Its size is
bounded by design (:func:`bound_state`, ``max_state_bytes``, below the broker's and Faust's
record limits): a tile can hold thousands of change polygons (a sparse scene whose one block
is the whole scene), and a table value over the limit crashed the worker. Over the budget,
alert outlines are kept as their envelopes (agreement is then judged on envelopes), then
the least confident alerts leave confirmation (they were sent as ``low`` clues already;
``state["dropped"]`` counts them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shapely.geometry import mapping, shape

from contract.clue import Clue


@dataclass(frozen=True)
class ConfirmParams:
    confirm_looks: int = 2
    window_looks: int = 4
    expire_days: float = 90.0
    low_factor: float = 0.5  # clue confidence of a one-look alert = polygon confidence x this
    max_state_bytes: int = 256 * 1024  # a tile's state as JSON; below max_record_bytes, 1 MB


def new_state() -> dict[str, Any]:
    return {"alerts": [], "last_time": None, "looks": 0}


def pending_baselines(state: dict[str, Any]) -> set[str]:
    """Baselines of the alerts still waiting for confirmation (one detection each)."""
    return {a["baseline_uri"] for a in state["alerts"] if a["status"] == "low"}


def _overlaps(alert: dict[str, Any], clues: list[Clue]) -> bool:
    g = shape(alert["clue"]["location"])
    return any(c.location and shape(c.location).intersects(g) for c in clues)


def observe(state: dict[str, Any], time: datetime, baseline_uri: str | None,
            new_clues: list[Clue], looks_by_baseline: dict[str, list[Clue]],
            params: ConfirmParams | None = None) -> tuple[dict[str, Any], list[Clue]]:
    """One acquisition of a tile: update pending alerts, add new ones; clues to send.

    ``new_clues`` are the changes against the tile's baseline (its latest earlier scene);
    ``looks_by_baseline`` the changes against each pending alert's baseline. A re-delivered
    or out-of-order acquisition (not later than the last one seen) changes nothing.
    """
    p = params or ConfirmParams()
    t = time.timestamp()
    if state["last_time"] is not None and t <= state["last_time"]:
        return state, []
    out: list[Clue] = []
    for alert in state["alerts"]:
        if alert["status"] != "low":
            continue
        looks = looks_by_baseline.get(alert["baseline_uri"], [])
        alert["looks"] += 1
        if _overlaps(alert, looks):
            alert["agree"] += 1
        clue = Clue.model_validate(alert["clue"])
        if alert["agree"] >= p.confirm_looks:
            alert["status"] = "confirmed"
            clue = clue.model_copy(update={
                "state": "update", "time": time, "confidence": alert["confidence"],
                "metrics": {**clue.metrics, "confirmation": "confirmed",
                            "looks": alert["looks"], "agree": alert["agree"]}})
        elif alert["looks"] >= p.window_looks or (
                t - alert["first"] > timedelta(days=p.expire_days).total_seconds()):
            alert["status"] = "expired"
            clue = clue.model_copy(update={
                "state": "closed", "time": time, "end": time,
                "metrics": {**clue.metrics, "confirmation": "expired",
                            "looks": alert["looks"], "agree": alert["agree"]}})
        else:
            continue
        alert["clue"] = clue.model_dump(mode="json", exclude={"evidence"})
        out.append(clue)
    # Keep finished alerts only as long as they matter for dedup of re-sent scenes.
    state["alerts"] = [a for a in state["alerts"] if a["status"] == "low"]
    for clue in new_clues:
        low = clue.model_copy(update={
            "confidence": round(clue.confidence * p.low_factor, 4),
            "metrics": {**clue.metrics, "confirmation": "low", "looks": 0, "agree": 1}})
        state["alerts"].append({
            "clue": low.model_dump(mode="json", exclude={"evidence"}), "status": "low",
            "first": t, "looks": 0, "agree": 1, "confidence": clue.confidence,
            "baseline_uri": baseline_uri})
        out.append(low)
    state["last_time"] = t
    state["looks"] += 1
    return bound_state(state, p.max_state_bytes), out


def state_bytes(state: dict[str, Any]) -> int:
    """Size of the state as the table stores it (JSON)."""
    return len(json.dumps(state, separators=(",", ":")).encode())


def bound_state(state: dict[str, Any], budget: int) -> dict[str, Any]:
    """The state within ``budget`` bytes (see the module docstring); cheap when it fits."""
    size = state_bytes(state)
    if size <= budget:
        return state
    alerts = state["alerts"]
    # 1. outlines as envelopes, the largest first, until it fits
    sized = sorted(alerts, key=lambda a: -len(json.dumps(a["clue"].get("location") or {})))
    for alert in sized:
        location = alert["clue"].get("location")
        if not location or location.get("type") == "Polygon" and len(
                location.get("coordinates", [[]])[0]) <= 5:
            continue
        before = len(json.dumps(location))
        alert["clue"]["location"] = mapping(shape(location).envelope)
        alert["clue"].setdefault("metrics", {})["outline"] = "envelope"
        size -= before - len(json.dumps(alert["clue"]["location"]))
        if size <= budget:
            return state
    # 2. the least confident alerts leave confirmation until it fits (measured, not guessed)
    alerts.sort(key=lambda a: -float(a.get("confidence") or 0.0))
    per_alert = [len(json.dumps(a, separators=(",", ":")).encode()) + 1 for a in alerts]
    size = state_bytes(state)
    while alerts and size > budget - 64:  # room for the "dropped" counter
        alerts.pop()
        size -= per_alert.pop()
        state["dropped"] = state.get("dropped", 0) + 1
    return state
