"""The agent modules of the worker, each with ``register(streams)``.

A module registers its agents, tables and timers on the app it is given and returns what a
test needs to drive them; ``streams.app.build_streams`` calls them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

AGENT_MODULES: tuple[str, ...] = (
    "streams.registry_watch", "streams.sinks", "streams.env", "streams.env_region",
    "streams.video", "streams.camera_health", "streams.satellite", "streams.fire",
    "streams.power", "streams.clues", "streams.evidence",
)


def registrations(modules: Sequence[str] | None = None
                  ) -> Iterator[tuple[str, Callable[[Any], Any]]]:
    for name in modules if modules is not None else AGENT_MODULES:
        yield name, importlib.import_module(name).register
