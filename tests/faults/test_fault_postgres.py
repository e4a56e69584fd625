"""PostgreSQL stops for ~25 s while readings keep coming over MQTT: the sinks hold their
batches (and so their Kafka offsets) and retry with backoff; afterwards every reading is in
the database exactly once."""

from __future__ import annotations

import threading
import time
from typing import Any

Rig = Any  # tests/faults/conftest.py


def test_postgres_down_while_readings_flow(rig: Rig) -> None:
    total = 300
    sender = threading.Thread(target=rig.publish, args=(0, total), kwargs={"pace": 0.1})
    sender.start()  # ~30 s of readings, 10 a second
    time.sleep(3)
    rig.services.stop_service("postgres")  # fast shutdown, mid-stream
    down_at = time.monotonic()
    time.sleep(25)
    assert rig.alive("worker") and rig.alive("ingest"), rig.log_tails()
    rig.services.start_service("postgres")  # same port, same data dir
    print(f"postgres was down {time.monotonic() - down_at:.1f}s")
    sender.join(timeout=60)
    assert not sender.is_alive()
    rig.wait_for(f"{total} readings", lambda: rig.count() >= total, timeout=90)
    time.sleep(2)  # anything re-delivered after the count was reached must not add rows
    rig.assert_exactly(range(total))
    assert rig.alive("worker") and rig.alive("ingest")
    assert "database write failed" in (rig.logs / "worker.log").read_text(errors="replace")
