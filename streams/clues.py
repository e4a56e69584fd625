"""Fusion and dedup of clues into cases, per site.

A second consumer of the ``clues`` topic (keyed by site, next to the clues sink). The Faust
table ``open-cases`` holds the open case of each site. A clue joins the site's open case
when its time span [start, time] comes within ``CASE_WINDOW_S`` of the case's span (data
time, not wall time, so a replay fuses the same way); otherwise it starts a new case that
replaces the old one in the table. The old case's row stays in the ``cases`` table.

* Dedup: a case keys its clues by ``clue_id`` (the episode), so the open/update/closed
  events of one episode update one entry instead of adding clues.
* Fusion: clues of different modalities at one site become one case; its confidence is
  ``1 - prod(1 - c_m)`` over modalities, ``c_m`` being the highest current confidence of a
  clue of that modality. Combining per modality, not per clue, keeps ten env clues of one
  station from looking like ten independent witnesses.
* Evidence: the case lists every clue id and a reference (clue, name, type, sha256) to each
  evidence item its clues carried; the items themselves are in the evidence store. Evidence
  may come after its clue, on a later event of the same clue (an env clue is sent first
  with its plots pending and again with the PNGs; a video clip comes with an update): it
  is added all the same, and an event older than the one the case holds adds its evidence
  but leaves the clue's state as it is.
* Idempotence: ``case_id`` is ``case:<site>:<start of its first clue>`` and ``version``
  counts its changes; the row is upserted only by an equal or newer version, and a clue
  re-delivered after a crash finds itself already in the case and changes nothing but the
  version.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from contract.records import Clue
from contract.topics import CLUES
from geo.routing import Router
from storage.sinks import CasesSink
from streams.sinks import flush_until_durable
from streams.table_state import put_state

if TYPE_CHECKING:
    from streams.app import Streams

log = logging.getLogger(__name__)

CASE_WINDOW_S = 24 * 3600.0


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y%m%dT%H%M%SZ")


def combined_confidence(case: dict[str, Any]) -> float:
    best: dict[str, float] = {}
    for entry in case["clues"].values():
        best[entry["modality"]] = max(best.get(entry["modality"], 0.0), entry["confidence"])
    rest = 1.0
    for c in best.values():
        rest *= 1.0 - c
    return round(1.0 - rest, 6)


def new_case(site: str, clue: Clue, department: str | None) -> dict[str, Any]:
    t0 = _ts(clue.start)
    return {"case_id": f"case:{site}:{_stamp(t0)}", "site": site, "first": t0,
            "last": _ts(clue.time), "clues": {}, "evidence": [], "location": clue.location,
            "department": department, "version": 0}


def within(case: dict[str, Any], clue: Clue, window: float = CASE_WINDOW_S) -> bool:
    return (_ts(clue.start) <= case["last"] + window
            and _ts(clue.time) >= case["first"] - window)


def fuse(case: dict[str, Any] | None, clue: Clue, site: str, department: str | None = None,
         window: float = CASE_WINDOW_S) -> tuple[dict[str, Any], bool]:
    """The case ``clue`` belongs to after it arrived, and whether that is the site's open case
    (False for a late clue older than the open case: it gets a case of its own)."""
    if case is not None and (clue.clue_id in case["clues"] or within(case, clue, window)):
        case = {**case, "clues": dict(case["clues"]), "evidence": list(case["evidence"])}
        is_open = True
    else:
        is_open = case is None or _ts(clue.time) >= case["first"] - window
        case = new_case(site, clue, department)
    cid = clue.clue_id
    known = case["clues"].get(cid)
    if known is None or _ts(clue.time) >= known.get("time", float("-inf")):
        # an older event arriving late (an env clue's evidence follows its batch's later
        # events: open, closed, then open again with its PNGs) must not reopen the entry
        case["clues"][cid] = {"modality": clue.modality, "kind": clue.kind, "rule": clue.rule,
                              "subject": clue.subject, "state": clue.state,
                              "confidence": clue.confidence, "time": _ts(clue.time)}
    case["first"] = min(case["first"], _ts(clue.start))
    case["last"] = max(case["last"], _ts(clue.time))
    if case["location"] is None:
        case["location"] = clue.location
    if case["department"] is None:
        case["department"] = department
    seen = {(e["clue_id"], e["name"], e["sha256"]) for e in case["evidence"]}
    for item in clue.evidence:
        if not (item.content or item.sha256):
            continue  # still to be drawn: it comes again with its bytes (streams.evidence)
        sha = item.sha256 or hashlib.sha256(item.content).hexdigest()
        if (cid, item.name, sha) not in seen:
            case["evidence"].append({"clue_id": cid, "name": item.name,
                                     "media_type": item.media_type, "sha256": sha})
    case["confidence"] = combined_confidence(case)
    case["state"] = ("closed" if all(e["state"] == "closed" for e in case["clues"].values())
                     else "open")
    case["version"] += 1
    return case, is_open


def case_row(case: dict[str, Any]) -> dict[str, Any]:
    """The case as the ``cases`` table stores it (see ``storage.sinks.CasesSink``)."""
    entries = case["clues"].values()
    modalities = sorted({e["modality"] for e in entries})
    kinds = sorted({f"{e['modality']}/{e['kind']}" for e in entries})
    return {"case_id": case["case_id"], "site": case["site"], "state": case["state"],
            "first_time": datetime.fromtimestamp(case["first"], UTC),
            "last_time": datetime.fromtimestamp(case["last"], UTC),
            "modalities": modalities, "clue_ids": sorted(case["clues"]),
            "confidence": case["confidence"], "department": case["department"],
            "location": case["location"], "evidence": case["evidence"],
            "summary": f"{len(case['clues'])} clue(s) in {len(modalities)} modality(ies): "
                       + ", ".join(kinds),
            "version": case["version"]}


def decode(raw: Any) -> Clue | None:
    try:
        return Clue.model_validate_json(raw)
    except (ValidationError, ValueError, TypeError):
        return None  # the clues sink dead-letters it


# ---------------------------------------------------------------------- the agent
def apply_events(events: Sequence[Any], table: Any, sink: CasesSink,
                 router: Router) -> int:
    """Fuse a batch of clue events into the table and the sink; returns cases touched.

    The site and department come with the clue (its route, set once by the clue exit);
    ``router`` routes only a clue that arrives without one.
    """
    n = 0
    for event in events:
        clue = decode(event.value)
        if clue is None:
            continue
        route = clue.route if clue.route is not None else router.route_clue(clue).to_dict()
        key = event.key
        site = key.decode() if isinstance(key, bytes) and key else route["site"]
        case, is_open = fuse(table.data.get(site), clue, site, route["department"])
        if is_open:
            put_state(table, event.message.partition, site, case)
        sink.add(case_row(case))
        n += 1
    return n


def register(streams: Streams) -> Any:
    """The fusion agent and its ``open-cases`` table; returns the agent."""
    settings = streams.settings
    open_cases = streams.app.Table("open-cases", default=None, partitions=settings.partitions,
                                   key_type=str, help="the open case of each site")

    async def fusion(stream: Any) -> None:
        sink = CasesSink()
        async for events in stream.take_events(settings.sink_batch_size,
                                               within=settings.clue_batch_seconds):
            try:
                apply_events(events, open_cases, sink, streams.router)
            except Exception:  # never let the body raise: Faust would ack the batch anyway
                log.exception("fusion of %d clues failed", len(events))
            await flush_until_durable(streams.db_pool, sink)

    return streams.app.agent(streams.topic(CLUES), name="streams.clues.fusion")(fusion)
