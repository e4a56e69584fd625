"""One decode per record for all the agents of a worker that consume the same topic.

``env.readings`` has two consumers in every worker, the readings sink and the env monitor;
each used to validate every record with pydantic itself, so a batch of 100 readings was
parsed twice (about 8 % of the worker's samples at saturation). A ``SharedDecode`` keeps a
decoded record until each registered consumer has taken it once, keyed by the raw bytes
(both agents receive the same message value). It only saves work: a record not held (the
other consumer took it long ago, or it was dropped to stay under the bound) is decoded
again, the same bytes giving an equal record; input that fails validation raises for each
consumer as before and is never held. Records are shared read-only between the consumers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

#: held records are dropped, oldest first, beyond this many units (readings for
#: ``env.readings``): at saturation the sink runs a few seconds ahead of the detector
MAX_HELD = 50_000


class SharedDecode:
    """``decode(raw)`` for ``consumers`` agents: the first to ask decodes, the others reuse."""

    def __init__(self, validate: Callable[[bytes], Any],
                 size: Callable[[Any], int] = lambda _: 1, max_held: int = MAX_HELD) -> None:
        self.validate = validate
        self.size = size
        self.max_held = max_held
        self.consumers = 0  # agents registered on it (``Streams.shared_decoder``)
        self._held: dict[bytes, list[Any]] = {}  # raw -> [record, takes left, size]
        self._units = 0
        self._lock = threading.Lock()  # the consumers decode in worker threads

    def __call__(self, raw: bytes) -> Any:
        if self.consumers < 2 or not isinstance(raw, bytes):
            return self.validate(raw)
        with self._lock:
            hit = self._held.get(raw)
            if hit is not None:
                hit[1] -= 1
                if hit[1] <= 0:
                    del self._held[raw]
                    self._units -= hit[2]
                return hit[0]
        record = self.validate(raw)  # outside the lock: CPU work
        units = self.size(record)
        with self._lock:
            if raw not in self._held:
                self._held[raw] = [record, self.consumers - 1, units]
                self._units += units
            while self._units > self.max_held and self._held:
                oldest = next(iter(self._held))
                self._units -= self._held.pop(oldest)[2]
        return record

    def __len__(self) -> int:
        return len(self._held)
