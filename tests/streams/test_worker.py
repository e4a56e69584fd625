"""``streams.worker``: the worker's logging set-up, on the real Faust worker class."""

from __future__ import annotations

import logging

import pytest

from contract.settings import Settings
from streams.app import build_streams
from streams.worker import QuietWorker


@pytest.fixture
def root_logger_restored():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers


def test_warning_level_builds_no_debug_records(root_logger_restored: logging.Logger) -> None:
    """At WARNING, a debug line of aiokafka (several per fetch) must not be built into a
    record: stock Faust's spinner handler sets the root logger to DEBUG there."""
    app = build_streams(Settings()).app
    worker = QuietWorker(app, loglevel="warning", quiet=True)
    worker._setup_logging()
    assert worker.spinner is None
    assert logging.getLogger("aiokafka.consumer.fetcher").getEffectiveLevel() == logging.WARNING
    assert not logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)
