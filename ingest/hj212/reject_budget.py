"""How many refused inputs of one source (a data logger's address) are kept per minute.

A broken or hostile logger can send thousands of bad frames a second; keeping every one would
let it fill the dead-letter store and the broker. So refused input that was not answered with
a 9014 is kept within a budget per *source* (its IP address, whatever number of connections
it opens) -- a token bucket of ``per_min`` with a burst of ``per_min``. What the budget drops
is not silent: the first drop writes a summary row ("rate limit reached"), and the next row
kept for that source (or the end of its connection) writes a summary of how many were dropped,
between which times and for which reasons. Bookkeeping only (the caller writes the rows).

:class:`Bucket` is the token bucket under it and under the server's per-connection frame
and byte rates.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Bucket", "RejectBudget", "Summary"]


@dataclass
class Bucket:
    """A token bucket (the HJ 212 server's frames and bytes per second per connection)."""

    rate: float
    burst: float
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def take(self, n: float = 1.0) -> bool:
        self._refill()
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    async def wait(self, n: float = 1.0) -> None:
        """Take ``n`` tokens, sleeping for them (possibly into debt for a big ``n``)."""
        self._refill()
        self.tokens -= n
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.rate)


@dataclass
class Summary:
    """A row that stands for refused inputs the budget did not keep."""

    source: str
    reason: str
    context: dict[str, Any]


@dataclass
class _Source:
    tokens: float
    at: float
    dropped: int = 0
    first: float = 0.0
    last: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)


class RejectBudget:
    def __init__(self, per_min: float, *, max_sources: int = 10_000) -> None:
        self.rate = per_min / 60.0
        self.burst = max(per_min, 1.0)
        self.max_sources = max_sources
        self._sources: OrderedDict[str, _Source] = OrderedDict()

    def take(self, source: str, reason: str, now: float | None = None
             ) -> tuple[bool, Summary | None]:
        """(keep this refused input?, a summary row to write first, if any)."""
        now = time.monotonic() if now is None else now
        state = self._state(source, now)
        state.tokens = min(self.burst, state.tokens + (now - state.at) * self.rate)
        state.at = now
        if state.tokens >= 1.0:
            state.tokens -= 1.0
            return True, self._summary(source, state, wall=time.time())
        state.dropped += 1
        state.last = time.time()
        if len(state.reasons) < 20 or reason[:80] in state.reasons:
            state.reasons[reason[:80]] += 1
        if state.dropped == 1:
            state.first = state.last
            return False, Summary(source, f"HJ 212: rate limit of {self.burst:.0f} refused inputs"
                                  f" a minute reached for {source}: further ones are counted, "
                                  "not kept, until it recovers",
                                  {"source": source, "rate_limit_per_min": self.burst})
        return False, None

    def drain(self, source: str) -> Summary | None:
        """The summary of what was dropped for ``source`` and not yet reported."""
        state = self._sources.get(source)
        return self._summary(source, state, wall=time.time()) if state else None

    def _state(self, source: str, now: float) -> _Source:
        state = self._sources.get(source)
        if state is None:
            state = self._sources[source] = _Source(tokens=self.burst, at=now)
            while len(self._sources) > self.max_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(source)
        return state

    def _summary(self, source: str, state: _Source, wall: float) -> Summary | None:
        if not state.dropped:
            return None
        summary = Summary(source, f"HJ 212: {state.dropped} refused inputs from {source} not "
                          f"kept (rate limit of {self.burst:.0f} a minute per source)",
                          {"source": source, "dropped": state.dropped, "first": state.first,
                           "last": state.last, "reasons": dict(state.reasons.most_common(20)),
                           "rate_limit_per_min": self.burst})
        state.dropped, state.reasons = 0, Counter()
        return summary
