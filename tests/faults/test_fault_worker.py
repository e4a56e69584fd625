"""The Faust worker is SIGKILLed in the middle of a stream of readings and started again:
uncommitted batches are re-delivered, idempotent writes keep them single, nothing is lost.

Before ``streams/faust_fixes.py`` about 4 runs in 10 lost one reading here (the restarted
worker committed past a record it never wrote; RELIABILITY.md, "Worker SIGKILL").
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

Rig = Any  # tests/faults/conftest.py


def test_worker_sigkill_mid_stream(rig: Rig) -> None:
    total = 400
    sender = threading.Thread(target=rig.publish, args=(0, total), kwargs={"pace": 0.02})
    sender.start()  # ~8 s of readings, 50 a second
    rig.wait_for("the first rows", lambda: rig.count() > 0, timeout=30)
    rig.stop_proc("worker", sig=signal.SIGKILL)  # mid-stream, with batches in flight
    at_kill = rig.count()
    time.sleep(2)
    rig.start_proc("worker")
    sender.join(timeout=60)
    assert not sender.is_alive()
    print(f"rows at kill: {at_kill} of {total}")
    assert at_kill < total, "the kill did not land mid-stream"
    t0 = time.monotonic()
    try:
        rig.wait_for(f"{total} readings", lambda: rig.count() >= total, timeout=60)
    except AssertionError:
        got = {round(r[0]) for r in rig.query(
            "SELECT value FROM readings WHERE station = %s", (rig.station,))}
        raise AssertionError(f"missing readings {sorted(set(range(total)) - got)}; "
                             f"state kept in {rig.state}") from None
    print(f"all rows {time.monotonic() - t0:.1f}s after the sender finished")
    time.sleep(2)
    rig.assert_exactly(range(total))
    assert rig.alive("worker") and rig.alive("ingest")
