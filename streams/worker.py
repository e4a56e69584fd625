"""``offsite worker``: every agent of the app in one Faust worker process."""

from __future__ import annotations

import asyncio

import faust
from prometheus_client import start_http_server

from contract.settings import Settings
from contract.topic_admin import ensure_topics
from streams.app import build_streams


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    asyncio.run(ensure_topics(settings, extra=()))
    streams = build_streams(settings)
    if settings.worker_metrics_port:  # the worker's own counters; the API serves its own
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    worker = faust.Worker(streams.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
