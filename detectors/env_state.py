"""Copies of a ``StationMonitor`` state (a plain dict of JSON types).

The stream keeps each station's state as a table value and sends it to the changelog, which
the Kafka producer serialises later: the value handed over must not change with the next
batch, so the monitor gives a copy per batch (``snapshot_state``), and a monitor rebuilt
from a table value works on its own copy (``copy_state``).
"""

from __future__ import annotations

from typing import Any

import orjson


def copy_state(state: dict[str, Any]) -> dict[str, Any]:
    """An independent copy of a JSON-typed state: an orjson round trip, which is ~8x faster
    than ``copy.deepcopy`` on a station's ~50 KB state (recovery and rebuilds only)."""
    return orjson.loads(orjson.dumps(state))


def snapshot_state(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of the state that no later ``observe`` changes, made per batch for the table.

    Nearly all of a state is the code buffers (``[t, value, flag]`` entries) and the replay
    index (``[n, t]`` pairs): those lists are copied with slices (their items are numbers
    and strings), everything else goes through the orjson round trip. The round trip of
    the whole ~50 KB state, parsing every number again, was a third of the detector's time
    per batch of 100 readings."""
    codes, replay = state["codes"], state["replay"]
    light = dict(state, codes={c: dict(cs, buf=[]) for c, cs in codes.items()},
                 replay=dict(replay, tri={}))
    out = orjson.loads(orjson.dumps(light))
    for code, cs in out["codes"].items():
        cs["buf"] = [p[:] for p in codes[code]["buf"]]
    out["replay"]["tri"] = {k: v[:] for k, v in replay["tri"].items()}
    return out
