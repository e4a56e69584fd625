"""The one clue exit: every modality's clues leave the worker here.

One key rule: a clue is routed once (``geo.routing``), the route travels with it
(``Clue.route``) and its site is the key of the ``clues`` topic, so clues of every modality
at one site land on one partition and fuse into one case (``streams.clues``). One delivery
rule: ``publish`` returns only when the broker has acknowledged every clue, retrying with
backoff until it has; nothing is dropped. Callers write their own state only after it
returns, so a crash in between re-sends the same clues (idempotent downstream).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter

from contract.clue import Clue
from geo.routing import Router

log = logging.getLogger(__name__)

CLUES_SENT = Counter("offsite_clues_published_total", "clues acknowledged by the broker",
                     ["modality"])
CLUE_RETRIES = Counter("offsite_clue_publish_retries_total",
                       "failed attempts to hand clues to the broker (retried)")


class ClueExit:
    """Routes, keys and sends clues; ``publish`` waits for the broker's ack."""

    def __init__(self, topic: Any, router: Router, initial_delay_s: float = 0.5,
                 max_delay_s: float = 30.0) -> None:
        self.topic = topic
        self.router = router
        self.initial_delay_s = initial_delay_s
        self.max_delay_s = max_delay_s
        self.hold_until: asyncio.Event | None = None  # set: the registry's router is loaded

    def routed(self, clue: Clue) -> Clue:
        """The clue with its route; a clue routed already keeps the route it has."""
        if clue.route is not None:
            return clue
        return clue.model_copy(update={"route": self.router.route_clue(clue).to_dict()})

    async def publish(self, clues: Sequence[Clue]) -> list[Clue]:
        """Send ``clues`` keyed by their routed site; returns them routed, once acked."""
        if not clues:
            return []
        if self.hold_until is not None:
            await self.hold_until.wait()
        routed = [self.routed(c) for c in clues]
        payloads = [(c.route["site"].encode(), c.model_dump_json().encode())  # type: ignore[index]
                    for c in routed]
        delay = self.initial_delay_s
        while payloads:
            try:
                futures = [await self.topic.send(key=key, value=value)
                           for key, value in payloads]
                await asyncio.gather(*futures)
                break
            except Exception as exc:  # broker away: hold the caller (and its offsets), retry
                CLUE_RETRIES.inc()
                log.error("sending %d clues failed (%s); retrying in %.1fs", len(payloads),
                          exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay_s)
        for clue in routed:
            CLUES_SENT.labels(clue.modality).inc()
        return routed
