"""Pushes tasks to inspectors' mobile terminals over MQTT.

Design: tasks are opened by the database (a trigger on ``clues``, whichever process wrote
the clue) and changed by the API; every change of a ``tasks`` row takes the next
``event_seq`` and notifies channel ``offsite_tasks`` (``migrations/005_tasks.sql``). Each API
process runs one ``TaskPusher``: it LISTENs, and on every notice (and after every
(re)connect) publishes the tasks changed since the last one it sent to
``offsite/tasks/{inspector_id}``, QoS 1, retained, the payload being the task exactly as
``GET /tasks/{id}`` returns it (``storage.tasks.task_json``). At start it publishes each
inspector's most recently changed task, so nothing changed while no API ran is lost.

The retained message of a topic is the inspector's latest changed task; a terminal
fetches its whole inbox with ``GET /tasks``. Several API instances publish the same
payloads (harmless: retained, idempotent). With ``settings.mqtt_url`` unset the pusher is
off. A reassigned task is published to its new inspector only. A task with a pair of
inspectors (a drawn inspection) is published to both, first and second inspector.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from fastapi import FastAPI

from contract.settings import get_settings
from storage import tasks as store
from storage.notify import TASKS_CHANNEL, follow

CHANNEL = TASKS_CHANNEL
TOPIC = "offsite/tasks/{inspector}"
log = logging.getLogger(__name__)


def topic_for(inspector: str) -> str:
    return TOPIC.format(inspector=inspector)


class TaskPusher:
    """One LISTEN connection and one MQTT client per process."""

    def __init__(self, database_url: str, mqtt_url: str, pool: Any,
                 auth: tuple[str | None, str | None]) -> None:
        """``auth``: MQTT user and password (``Settings.mqtt_auth``: its own fields, else
        the URL's)."""
        self.url = database_url
        self.pool = pool
        parsed = urlparse(mqtt_url if "://" in mqtt_url else f"mqtt://{mqtt_url}")
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 1883
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"offsite-task-push-{uuid.uuid4().hex[:8]}")
        user, password = auth
        if user:  # the embedded and the compose Mosquitto refuse anonymous clients
            self.client.username_pw_set(user, password)
        self.last_seq: int | None = None
        self.published = 0
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()  # reconnects by itself; QoS 1 messages wait in its queue
        self._task = asyncio.create_task(self._run(), name="task-pusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, task: dict[str, Any]) -> None:
        for who in (task.get("assignee"), task.get("co_assignee")):
            if who:
                self.publish_to(who, task)

    def publish_to(self, inspector: str, task: dict[str, Any]) -> None:
        self.client.publish(topic_for(inspector), json.dumps(task), qos=1, retain=True)
        self.published += 1

    async def catch_up(self) -> None:
        if self.last_seq is None:  # first run: each inspector's latest task, then go on
            top = await store.last_event_seq(self.pool)
            for who, row in await store.latest_per_inspector(self.pool):
                self.publish_to(who, store.task_json(row))
            self.last_seq = top  # later changes are sent (again) by the loop below
        while True:
            rows = await store.changed_since(self.pool, self.last_seq)
            for row in rows:
                self.publish(store.task_json(row))
                self.last_seq = row["event_seq"]
            if len(rows) < 500:
                break

    async def _run(self) -> None:
        await follow(self.url, CHANNEL, lambda _: self.catch_up(), name="task pusher")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the app's lifespan (the pool is open): starts the pusher if MQTT is set."""
    settings = get_settings()
    app.state.task_pusher = None
    if settings.mqtt_url and settings.database_url:
        pusher = TaskPusher(settings.database_url, settings.mqtt_url, app.state.pool,
                            settings.mqtt_auth)
        await pusher.start()
        app.state.task_pusher = pusher
    try:
        yield
    finally:
        if app.state.task_pusher is not None:
            await app.state.task_pusher.stop()
