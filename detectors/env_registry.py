"""Readings from a station the registry does not know: one ``unregistered_source`` clue.

Such readings are stored like any other (nothing is lost; ``storage/unregistered.py``
counts them per station) but nobody owns the station, it has no place on the map and no
department gets its clues routed, so an operator has to decide: register it, or find out
who is sending. One clue per station says so: it opens with the first reading seen while
the station is unknown, stays open (no update per reading: a station sending every minute
would flood the list) and closes with the first reading after the station is registered.

Pure: whether the station is known is decided by the caller from the registry it holds
(active ``stations`` rows), time comes from the readings. The state is a small JSON dict
per station that the caller keeps with the station's other detector state (a Faust table
keyed by station), so a worker restart neither loses the open clue nor opens a second one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contract.clue import Clue

KIND = "unregistered_source"
RULE = "registry/unregistered-station"
DETECTOR = "offsite.env.registry"
VERSION = "1"


def observe(state: dict[str, Any], station: str, time: datetime, *, known: bool,
            source: str = "") -> Clue | None:
    """The clue event this reading causes, if any; updates ``state`` (JSON types only).

    ``time`` is the reading's own time (aware); ``source`` its ingest path (``mqtt``,
    ``hj212-tcp``...), kept on the clue to help find the sender.
    """
    since = state.get("since")
    if not known:
        if since is not None:
            return None
        state.update(since=time.isoformat(), source=source)
        return Clue(modality="env", kind=KIND, rule=RULE, subject=station, state="open",
                    start=time, time=time, confidence=1.0,
                    metrics={"first_seen": time.isoformat(), "source": source},
                    summary=f"readings from station {station!r}, which the registry does not"
                            " list: register it or find out who sends them",
                    detector=DETECTOR, detector_version=VERSION)
    if since is None:
        return None
    start = datetime.fromisoformat(since)
    state.pop("since", None)
    first_source = state.pop("source", "")
    return Clue(modality="env", kind=KIND, rule=RULE, subject=station, state="closed",
                start=start, time=max(time, start), end=max(time, start), confidence=1.0,
                metrics={"first_seen": since, "source": first_source,
                         "registered_by": time.isoformat()},
                summary=f"station {station!r} is registered now",
                detector=DETECTOR, detector_version=VERSION)
