"""``offsite worker``: every agent of the app in one Faust worker process."""

from __future__ import annotations

import asyncio

import faust

from contract.topic_admin import ensure_topics


def run_worker(loglevel: str = "info") -> None:
    from streams import agents  # noqa: F401  (registers every agent)
    from streams.app import app, settings

    asyncio.run(ensure_topics(settings, extra=()))
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
