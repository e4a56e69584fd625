"""Building the worker's Faust app for agent tests (no broker is contacted)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from contract.clue import Clue
from contract.settings import Settings
from streams.app import Streams, build_streams


class RecordingTopic:
    """Stands in for the ``clues`` topic behind the real clue exit: the broker's ack is
    the one hop these tests do not cover (the end-to-end tests do)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Clue]] = []

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.sent.append((key.decode(), Clue.model_validate_json(value)))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


@dataclass
class FakeMsg:
    partition: int


@dataclass
class FakeEvent:
    """What ``take_events`` hands an agent: the value, the message's partition, the key."""

    value: bytes
    message: FakeMsg
    key: bytes = b""


class FakeTable:
    """A Faust table's data and changelog sends, without a broker."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.changelog: list[tuple[int, str]] = []
        self.sent: dict[str, Any] = {}
        self.sizes: list[int] = []  # bytes of each changelog record, as the broker gets it

    def send_changelog(self, partition: int, key: str, value: Any,
                       value_serializer: str | None = None) -> None:
        self.changelog.append((partition, key))
        if value is None and value_serializer == "raw":  # a tombstone: recovery drops the key
            self.sizes.append(0)
            self.sent.pop(key, None)
            return
        # what recovery reads: the bytes as sent (raw), else the table's JSON of the value
        raw = value if value_serializer == "raw" else orjson.dumps(value)
        self.sizes.append(len(raw))
        self.sent[key] = orjson.loads(raw)


Build = Callable[..., tuple[Streams, RecordingTopic]]


@pytest.fixture()
def build() -> Build:
    """``build(*modules, **settings)``: an app with those agent modules registered and the
    clue exit sending to a ``RecordingTopic``."""

    def make(*modules: str, **settings: Any) -> tuple[Streams, RecordingTopic]:
        streams = build_streams(Settings(**settings), modules=modules)
        topic = RecordingTopic()
        streams.clue_exit.topic = topic
        return streams, topic

    return make
