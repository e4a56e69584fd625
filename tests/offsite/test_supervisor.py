"""``offsite up``'s supervisor (issue 20): a child that dies is restarted, with a back-off
when it keeps dying, and the others keep running (same process, untouched)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from contract.settings import Settings
from offsite.runner import Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
CRASHER = [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]


def _wait_dead(sup: Supervisor, name: str) -> None:
    proc = dict(sup.children)[name]
    proc.wait(timeout=20)


def test_dead_child_is_restarted_and_others_keep_running(tmp_path: Path) -> None:
    sup = Supervisor(Settings(state_dir=tmp_path))
    try:
        sup.spawn("worker", argv=SLEEPER)
        sup.spawn("ingest-mqtt", argv=CRASHER)
        sup.spawn("replay", argv=CRASHER)  # one-shot: never restarted
        worker = dict(sup.children)["worker"]
        _wait_dead(sup, "ingest-mqtt")
        _wait_dead(sup, "replay")
        now = time.monotonic()
        assert sup.check_children(now) == []  # died at once: it waits 1 s first
        assert sup.check_children(now + 1.5) == ["ingest-mqtt"]
        _wait_dead(sup, "ingest-mqtt")
        assert sup.check_children(now + 1.6) == []  # the back-off doubles: 2 s
        assert sup.check_children(now + 4.0) == ["ingest-mqtt"]
        assert dict(sup.children)["worker"] is worker and worker.poll() is None
        assert sup.restarts == {"ingest-mqtt": 2}
        # the worker is killed (a crash): restarted, and the crasher does not stop it
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        later = time.monotonic() + 100
        assert "worker" in sup.check_children(later) or "worker" in sup.check_children(later + 2)
        new = dict(sup.children)["worker"]
        assert new is not worker and new.poll() is None
        _wait_dead(sup, "ingest-mqtt")
        log = (tmp_path / "logs" / "ingest-mqtt.log").read_text()
        assert log.count("boom") == 3  # every run's output kept (appended)
    finally:
        sup.stop()
