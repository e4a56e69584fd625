"""Poison pills over MQTT (issue 20, cases 1, 2, 4 and 10): the real ingester on the session's
Mosquitto and Kafka. Each bad message goes to ``ingest.rejected`` (with its bytes, or the first
``rejected_raw_max`` of them) and is acknowledged; the valid message sent right after it
reaches ``env.readings``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from contract.input_rules import standard_codes
from contract.records import EnvReadings, Rejected, readings_of
from contract.settings import Settings
from ingest.mqtt import MqttIngester
from ingest.publisher import Publisher
from offsite.services import EmbeddedServices
from tests.ingest.test_hj212_server import _consume


@pytest.fixture(scope="module")
def settings(services: EmbeddedServices) -> Settings:
    return Settings(broker_url=services.broker_url, mqtt_url=services.mqtt_url, partitions=2,
                    mqtt_client_id=f"poison-{uuid.uuid4().hex[:6]}", max_mqtt_payload=1024 * 1024)


def _now_doc(values: dict, **extra: object) -> dict:
    return {"time": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(), "values": values,
            **extra}


def _publish(settings: Settings, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    url = urlparse(settings.mqtt_url or "")
    client.username_pw_set(url.username, url.password)  # the embedded broker wants them
    client.connect(url.hostname or "127.0.0.1", url.port or 1883)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(timeout=30)
    finally:
        client.disconnect()
        client.loop_stop()


BAD = {  # name -> (payload, what the reason says)
    "10 MB": (b"[" + b" " * (10 * 1024 * 1024) + b"]", "over max_mqtt_payload"),
    "NUL in a code": (json.dumps(_now_doc({"a34004\u0000": 1.0})).encode(), "NUL"),
    "unknown code": (json.dumps(_now_doc({"zzz999": 1.0})).encode(), "not an HJ 212"),
    "empty code": (json.dumps(_now_doc({"": 1.0})).encode(), "empty"),
    "long code": (json.dumps(_now_doc({"a" * 10_000: 1.0})).encode(), "characters, over"),
    "script code": (json.dumps(_now_doc({"<script>": 1.0})).encode(), "not an HJ 212"),
    "true as a value": (json.dumps(_now_doc({"a34004": True})).encode(), "not a number"),
    "interval -5": (json.dumps(_now_doc({"a34004": 1.0}, interval_s=-5)).encode(), "interval_s"),
    "interval 1e30": (json.dumps(_now_doc({"a34004": 1.0}, interval_s=1e30)).encode(),
                      "interval_s"),
    "empty values": (json.dumps(_now_doc({})).encode(), "no usable values"),
    "year 10000": (json.dumps({"time": "9999-12-31T23:59:59-14:00", "values": {"a34004": 1.0}}
                              ).encode(), "out of range"),
    "year 0001": (json.dumps({"time": "0001-01-01T00:00:00+00:00", "values": {"a34004": 1.0}}
                             ).encode(), "outside"),
    "lone surrogate": (b'{"time": "' + _now_doc({})["time"].encode()
                       + b'", "values": {"a\\ud800": 1.0}}', "surrogate"),
}


def test_each_poison_pill_is_kept_and_the_next_message_flows(settings: Settings) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    messages: list[tuple[str, bytes]] = []
    for n, (payload, _) in enumerate(BAD.values()):
        messages.append((f"offsite/env/P{tag}-{n}/json", payload))
        good = _now_doc({"a34004": float(n)})  # the valid message right after the bad one
        messages.append((f"offsite/env/P{tag}-{n}/json", json.dumps(good).encode()))
    # a mixed message: its valid code flows, its bad one is kept
    mixed = _now_doc({"a21026": 7.5, "a34004\u0000": 1.0})
    messages.append((f"offsite/env/P{tag}-mix/json", json.dumps(mixed).encode()))

    async def main() -> None:
        publisher = Publisher(settings, source="mqtt")
        await publisher.start()
        ingester = MqttIngester(settings, publisher)
        stop = asyncio.Event()
        task = asyncio.create_task(ingester.run(stop))
        try:
            await asyncio.wait_for(ingester.connected.wait(), 30)
            await asyncio.to_thread(_publish, settings, messages)
            await asyncio.sleep(0)
            readings = await _consume(
                settings, "env.readings", lambda f: len(f) >= len(BAD) + 1,
                lambda k, v: k is not None and k.decode().startswith(f"P{tag}"), timeout=60)
            rejected = await _consume(
                settings, "ingest.rejected", lambda f: len(f) >= len(BAD) + 1,
                lambda k, v: f"P{tag}".encode() in json.dumps(Rejected.loads(v).context
                                                             ).encode(), timeout=30)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
            await publisher.stop()
        got = {r.station: r for raw in readings for r in readings_of(
            EnvReadings.model_validate_json(raw))}
        for n, name in enumerate(BAD):
            assert got[f"P{tag}-{n}"].values == {"a34004": float(n)}, name
        assert got[f"P{tag}-mix"].values == {"a21026": 7.5}
        kept = {Rejected.loads(v).context["topic"].split("/")[2]: Rejected.loads(v)
                for v in rejected}
        for n, (name, (payload, why)) in enumerate(BAD.items()):
            dead = kept[f"P{tag}-{n}"]
            assert why in dead.reason, (name, dead.reason)
            if len(payload) <= settings.rejected_raw_max:
                assert dead.raw == payload, name
            else:  # kept up to the documented size, with the size and hash of the whole
                assert dead.raw == payload[:settings.rejected_raw_max]
                assert dead.context["raw_bytes"] == len(payload)
        assert "NUL" in kept[f"P{tag}-mix"].reason

    asyncio.run(main())


def test_embedded_mosquitto_refuses_anonymous_clients(services: EmbeddedServices,
                                                     settings: Settings) -> None:
    """Case 9: the broker ``offsite up`` starts wants the credentials it made (the URL
    carries them to the ingester); an anonymous client is refused, a credentialed one
    is served right after."""
    url = urlparse(settings.mqtt_url or "")
    assert url.username and url.password
    assert (services.state_dir / "mqtt-credentials").stat().st_mode & 0o077 == 0
    results: dict[str, object] = {}

    def attempt(name: str, user: str | None, password: str | None) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex}")
        if user:
            client.username_pw_set(user, password)
        client.on_connect = lambda c, u, f, reason, p: results.__setitem__(name, reason)
        client.connect(url.hostname or "127.0.0.1", url.port or 1883)
        client.loop_start()
        try:
            deadline = 10.0
            while name not in results and deadline > 0:
                time.sleep(0.1)
                deadline -= 0.1
        finally:
            client.disconnect()
            client.loop_stop()

    attempt("anonymous", None, None)
    attempt("wrong", url.username, "guess")
    attempt("operator", url.username, url.password)
    assert getattr(results["anonymous"], "is_failure", False)
    assert getattr(results["wrong"], "is_failure", False)
    assert not getattr(results["operator"], "is_failure", True)


def test_a_batch_over_the_record_limit_is_split_not_refused(services: EmbeddedServices) -> None:
    """A JSON array whose batch record would be over ``max_record_bytes`` (lowered here) is
    sent as smaller batches: every reading arrives, nothing is dead-lettered."""
    settings = Settings(broker_url=services.broker_url, mqtt_url=services.mqtt_url,
                        partitions=2, mqtt_client_id=f"split-{uuid.uuid4().hex[:6]}",
                        max_record_bytes=8192)
    tag = uuid.uuid4().hex[:8].upper()
    codes = sorted(c for c in standard_codes() if c.startswith("a"))[:40]
    base = datetime.now(UTC) - timedelta(hours=3)
    batch = [{"time": (base + timedelta(minutes=m)).isoformat(),
              "values": {c: float(m) for c in codes}} for m in range(100)]
    payload = json.dumps(batch).encode()
    assert len(payload) > 8 * settings.max_record_bytes

    async def main() -> list:
        publisher = Publisher(settings, source="mqtt")
        await publisher.start()
        ingester = MqttIngester(settings, publisher)
        stop = asyncio.Event()
        task = asyncio.create_task(ingester.run(stop))
        try:
            await asyncio.wait_for(ingester.connected.wait(), 30)
            await asyncio.to_thread(_publish, settings, [(f"offsite/env/B{tag}/json", payload)])
            return await _consume(
                settings, "env.readings",
                lambda f: sum(len(readings_of(EnvReadings.model_validate_json(v)))
                              for v in f if len(v) <= settings.max_record_bytes) >= 100,
                lambda k, v: k == f"B{tag}".encode(), timeout=60)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
            await publisher.stop()

    # another test's ingester (the session's e2e flow, default limits) may read the same
    # broker and send the whole array as one record: judge this ingester's records
    records = [v for v in asyncio.run(main()) if len(v) <= settings.max_record_bytes]
    assert len(records) > 8
    assert sum(len(readings_of(EnvReadings.model_validate_json(v))) for v in records) == 100
    got = [r for v in records for r in readings_of(EnvReadings.model_validate_json(v))]
    assert len(got) == 100 and all(len(r.values) == 40 for r in got)
