"""MQTT ingester: station payloads from MQTT to ``env.readings``.

Topics (QoS 1):

* ``offsite/env/{station}/json``: one JSON reading or a JSON array of them::

      {"time": "2026-11-25T08:00:00+08:00", "period": "hour",
       "values": {"a34004": 35.2, "a21026": 3.0}, "flags": {"a34004": "N"},
       "interval_s": 3600}

  ``time`` must carry its UTC offset; ``period`` is rtd (default), minute, hour or day;
  ``flags`` default to N (valid). A ``station`` field, if present, must match the topic.
* ``offsite/env/{station}/hj212``: one raw HJ 212 frame.

A JSON array goes to Kafka as ``ReadingBatch`` records (up to 100 readings each), so the
worker pays its per-record costs once per batch; one reading or frame is one ``Reading``.

Messages are acknowledged to the MQTT broker only after Kafka has them (paho manual ack
over a persistent session with a stable client id), so a crash between the two means a
redelivery, never a loss. Bad payloads go to ``ingest.rejected`` with the reason and are
then acknowledged: they are kept, and retrying them would not make them good.

The input rules are ``contract.input_rules`` (shared with HJ 212, the API and the offline
tools): a message over ``max_mqtt_payload``, a reading that breaks them (time outside the
live window, bad ``interval_s``, no usable value) or a code that does (unknown code, NUL,
``true`` or text as a value) goes to ``ingest.rejected`` -- the whole message, with every
reason -- while the message's valid readings and codes flow on. Only a broker outage is
retried; a record the broker can never take is dead-lettered, never retried forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from contract.input_rules import InputError, Retry, clean_text, is_permanent, split_reading
from contract.records import Reading, ReadingBatch, env_records
from contract.settings import Settings
from contract.topics import ENV_READINGS
from ingest.hj212 import HJ212Error, parse_frame, to_reading
from ingest.publisher import Publisher

log = logging.getLogger(__name__)
TOPIC_FILTERS = ("offsite/env/+/json", "offsite/env/+/hj212")
MAX_BATCH = 500


class PayloadError(ValueError):
    """A payload that cannot become readings; the message says why."""


@dataclass
class Decoded:
    """What one message yields: readings to forward and why anything else was refused (a
    refused reading or code goes to the dead-letter store; the others still flow)."""

    readings: list[Reading] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def _checked(decoded: Decoded, settings: Settings, now: datetime, live: bool,
             declared: Mapping[str, Collection[str]]) -> Decoded:
    """Apply the input rules (``contract.input_rules``) reading by reading, code by code."""
    out = Decoded(refused=list(decoded.refused))
    for i, reading in enumerate(decoded.readings):
        try:
            kept, refused = split_reading(reading, settings, now=now, live=live,
                                          declared=declared.get(reading.station, ()))
        except InputError as exc:
            out.refused.append(f"item {i}: {exc}")
            continue
        out.refused.extend(f"item {i}: {why}" for why in refused)
        if kept is not None:
            out.readings.append(kept)
    return out


def decode_json_payload(station: str, payload: bytes) -> Decoded:
    """Readings of a JSON payload; an item that does not validate is refused on its own."""
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # also too deep, or an over-long integer
        raise PayloadError(f"not JSON: {str(exc)[:200] or type(exc).__name__}") from exc
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise PayloadError("empty batch")
    out = Decoded()
    for i, item in enumerate(items):
        try:
            out.readings.append(_json_reading(station, item, i))
        except PayloadError as exc:
            out.refused.append(str(exc))
    return out


def _json_reading(station: str, item: object, i: int) -> Reading:
    if not isinstance(item, dict):
        raise PayloadError(f"item {i} is not a JSON object")
    if item.get("station", station) != station:
        raise PayloadError(f"item {i}: station {clean_text(item['station'], 80)!r} does not"
                           " match topic")
    values = item.get("values")
    if isinstance(values, dict):  # pydantic would take true as 1.0 and "35" as 35.0
        bad = [c for c, v in values.items()
               if isinstance(v, bool) or not isinstance(v, int | float)]
        if bad:
            raise PayloadError(f"item {i}: values.{clean_text(bad[0], 40)}: not a number")
    try:
        reading = Reading.model_validate({**item, "station": station, "source": "mqtt"})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = clean_text(".".join(str(p) for p in first["loc"]), 80)
        raise PayloadError(f"item {i}: {where}: {first['msg']}") from exc
    bad = [code for code, value in reading.values.items() if not math.isfinite(value)]
    if bad:  # NaN/Infinity (or "NaN" strings) would go on the wire as null: refuse them
        raise PayloadError(f"item {i}: values.{clean_text(bad[0], 40)}: not a finite number")
    return reading


def decode_hj212_payload(station: str, payload: bytes) -> Decoded:
    """A raw HJ 212 data upload; frames with a known non-standard CRC are kept (flagged)."""
    try:
        reading = to_reading(parse_frame(payload))
    except HJ212Error as exc:
        raise PayloadError(f"HJ 212: {exc}") from exc
    if reading.station != station:
        raise PayloadError(f"HJ 212: MN {clean_text(reading.station, 80)!r} does not match topic")
    return Decoded([reading.model_copy(update={"source": "mqtt-hj212"})])


def decode_message(topic: str, payload: bytes, settings: Settings | None = None,
                   now: datetime | None = None, live: bool = True,
                   declared: Mapping[str, Collection[str]] | None = None) -> Decoded:
    """Readings of one message; with ``settings``, checked by the input rules (``live``:
    times within the window around ``now``; else only 1970..2100, as offline tools do)."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[:2] != ["offsite", "env"] or not parts[2]:
        raise PayloadError(f"unexpected topic {clean_text(topic, 200)!r}")
    station, kind = parts[2], parts[3]
    if kind == "json":
        decoded = decode_json_payload(station, payload)
    elif kind == "hj212":
        decoded = decode_hj212_payload(station, payload)
    else:
        raise PayloadError(f"unexpected topic {clean_text(topic, 200)!r}")
    if settings is not None:
        decoded = _checked(decoded, settings, now or datetime.now(UTC), live, declared or {})
    return decoded


@dataclass
class _Message:
    topic: str
    payload: bytes
    mid: int
    qos: int


class MqttIngester:
    def __init__(self, settings: Settings, publisher: Publisher) -> None:
        if not settings.mqtt_url:
            raise RuntimeError("mqtt_url is not set")
        self.settings = settings
        self.publisher = publisher
        #: station -> codes it declares beyond the standards' (the registry may fill it)
        self.declared_codes: dict[str, frozenset[str]] = {}
        self.queue: asyncio.Queue[_Message] = asyncio.Queue(maxsize=10_000)
        self.loop = asyncio.get_running_loop()
        self.connected = asyncio.Event()
        url = urlparse(settings.mqtt_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 1883
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.mqtt_client_id,
                             clean_session=False, protocol=mqtt.MQTTv311, manual_ack=True)
        username, password = settings.mqtt_auth
        if username:  # the embedded and the compose Mosquitto refuse anonymous clients
            client.username_pw_set(username, password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self.client = client

    # paho callbacks run on its network thread: hand over to the event loop, nothing more
    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object,
                    _p: object) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT connect refused: %s", reason)
            return
        client.subscribe([(t, 1) for t in TOPIC_FILTERS])
        self.loop.call_soon_threadsafe(self.connected.set)
        log.info("MQTT connected to %s:%s", self.host, self.port)

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int, codes: list, _p: object
                      ) -> None:
        log.info("MQTT subscribed to %s: %s", ", ".join(TOPIC_FILTERS), codes)

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object,
                       _p: object) -> None:
        self.loop.call_soon_threadsafe(self.connected.clear)
        log.warning("MQTT disconnected: %s", reason)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        item = _Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos)
        # blocks paho's thread when the queue is full: back-pressure instead of unbounded memory
        asyncio.run_coroutine_threadsafe(self.queue.put(item), self.loop).result()

    async def run(self, stop: asyncio.Event) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        try:
            while not stop.is_set():
                batch = await self._next_batch(stop)
                if batch:
                    await self._forward(batch, stop)
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    async def _next_batch(self, stop: asyncio.Event) -> list[_Message]:
        try:
            first = await asyncio.wait_for(self.queue.get(), timeout=0.5)
        except TimeoutError:
            return []
        batch = [first]
        while len(batch) < MAX_BATCH and not self.queue.empty():
            batch.append(self.queue.get_nowait())
        return batch

    def _decode(self, msg: _Message) -> Decoded:
        if len(msg.payload) > self.settings.max_mqtt_payload:
            return Decoded(refused=[f"message of {len(msg.payload)} bytes is over "
                                    f"max_mqtt_payload ({self.settings.max_mqtt_payload})"])
        try:
            return decode_message(msg.topic, msg.payload, self.settings,
                                  declared=self.declared_codes)
        except PayloadError as exc:
            return Decoded(refused=[str(exc)])

    async def _forward(self, batch: list[_Message], stop: asyncio.Event | None = None) -> None:
        """Publish a batch, in order, then ack it; retry Kafka outages without acking.

        The poison-pill policy (``contract.input_rules``): what a message has that breaks
        the rules, and a message whose records the broker can never take (too large), goes
        to ``ingest.rejected`` once and is acknowledged with the rest; only an outage is
        retried, with back-off, for as long as it lasts (an unknown error a bounded number
        of times). Asked to stop while Kafka is away, it returns without acking: the broker
        keeps the messages in the persistent session and delivers them again to the next run.
        """
        # decoding and the input rules are CPU work (a batch holds up to MAX_BATCH messages
        # of 100 readings each): in a thread, so the loop keeps serving Kafka and paho
        work = await asyncio.to_thread(lambda: [self._decode(msg) for msg in batch])
        kept: set[int] = set()     # messages whose refusals are in the dead-letter store
        settled: set[int] = set()  # messages given up on as a whole (dead letter, no retry)
        retry = Retry("ingest.mqtt", self.settings.retry_max_attempts)
        while True:
            try:
                await self._send_batch(batch, work, kept, settled)
                break
            except Exception as exc:  # broker down: keep the batch, do not ack, back off
                if retry.failed(exc):
                    log.error("publish failed %d times (%s): the batch goes to the dead-letter"
                              " store", retry.unknown, exc)
                    for i, decoded in enumerate(work):
                        decoded.refused.append(f"publish failed: {clean_text(exc, 300)}")
                        decoded.readings.clear()
                        kept.discard(i)
                    await retry.wait()
                    continue
                log.error("Kafka publish failed (%s); retrying in %.1fs", exc, retry.delay)
                await retry.wait()
                if stop is not None and stop.is_set():
                    log.warning("stopping with %d messages un-acked (Kafka away); the MQTT"
                                " session keeps them", len(batch))
                    return
                # a broker that came back empty needs the topics declared before the retry
                await self.publisher.redeclare_topics()
        for msg in batch:
            self.client.ack(msg.mid, msg.qos)

    async def _send_batch(self, batch: list[_Message], work: list[Decoded], kept: set[int],
                          settled: set[int]) -> None:
        sends: list[tuple[int, asyncio.Future]] = []
        for i, (msg, decoded) in enumerate(zip(batch, work, strict=True)):
            if decoded.refused and i not in kept:
                await self._dead_letter(msg, decoded.refused)
                kept.add(i)
            if i in settled:
                continue
            try:
                for record in env_records(decoded.readings):  # a JSON array: batch records
                    sends.extend((i, f) for f in await self._send_fitting(record))
            except Exception as exc:
                if not is_permanent(exc):
                    raise
                await self._dead_letter(msg, [f"not publishable: {clean_text(exc, 300)}"])
                settled.add(i)
        results = await asyncio.gather(*(f for _, f in sends), return_exceptions=True)
        outage: BaseException | None = None
        for (i, _), result in zip(sends, results, strict=True):
            if not isinstance(result, BaseException) or i in settled:
                continue
            if is_permanent(result):  # e.g. MessageSizeTooLargeError: never a retry loop
                await self._dead_letter(batch[i], [f"broker refused: {clean_text(result, 300)}"])
                settled.add(i)
            else:
                outage = result
        if outage is not None:
            raise outage

    async def _send_fitting(self, record: Reading | ReadingBatch) -> list[asyncio.Future]:
        """Send a record; a batch over ``max_record_bytes`` is halved until its parts fit
        (only a single reading that is too large on its own is refused)."""
        try:
            return [await self.publisher.send(ENV_READINGS, record.station, record)]
        except InputError:
            if not isinstance(record, ReadingBatch) or len(record.readings) < 2:
                raise
        half = len(record.readings) // 2
        return [f for part in (record.readings[:half], record.readings[half:])
                for f in await self._send_fitting(env_records(part)[0])]

    async def _dead_letter(self, msg: _Message, reasons: list[str]) -> None:
        reason = "; ".join(reasons) if len(reasons) < 4 else \
            f"{'; '.join(reasons[:3])}; and {len(reasons) - 3} more"
        await self.publisher.reject(msg.payload, reason, topic=msg.topic, refused=reasons[:100])
