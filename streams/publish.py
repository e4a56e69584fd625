"""One way to put a clue on the ``clues`` topic: keyed by the site it is routed to.

The key is the fusion unit (``streams.clues``): clues of every modality at one site (a
zone, else a grid cell) land on one partition and fuse into one case.
"""

from __future__ import annotations

from storage.sinks import default_router
from streams.app import topic
from streams.records import Clue
from streams.topics import CLUES


def site_key(clue: Clue) -> bytes:
    return default_router().route_clue(clue).site.encode()


async def publish_clue(clue: Clue) -> None:
    await topic(CLUES).send(key=site_key(clue), value=clue.model_dump_json().encode())
