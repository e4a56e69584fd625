"""``offsite worker``: every agent of the app in one Faust worker process."""

from __future__ import annotations

import asyncio
import logging

import faust
from prometheus_client import start_http_server

from contract.settings import Settings
from contract.topic_admin import ensure_topics
from streams.app import build_streams


class QuietWorker(faust.Worker):
    """Faust's worker without its terminal spinner.

    At a log level of WARNING or above, Faust's spinner handler sets the root logger to
    DEBUG, so every debug line of aiokafka (several per fetch and send) is built into a
    record and then dropped: 4 % of a busy worker's CPU in the env bench.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    asyncio.run(ensure_topics(settings, extra=()))
    streams = build_streams(settings)
    if settings.worker_metrics_port:  # the worker's own counters; the API serves its own
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    worker = QuietWorker(streams.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
