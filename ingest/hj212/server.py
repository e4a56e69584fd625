"""HJ 212 TCP server: data loggers connect, upload frames, get their 9014/9011 answers.

One asyncio task pair per connection: a reader that cuts the byte stream into frames
(:mod:`ingest.hj212.framing`), checks each and hands readings to Kafka, and a replier that
answers in order -- a 9014 only once Kafka acknowledged the reading (``Publisher.send``'s
future), so an answered upload is never lost; if Kafka fails the connection is closed
unanswered and the logger resends later.

Checks, in order (QnRtn codes of HJ 212-2017 table 7; answers go out only when the frame's
Flag A bit asks for one, as 6.3.3.2 says):

1. not a frame at all -> ``ingest.rejected`` (no answer: nothing to address it to);
2. CRC matches no known algorithm -> rejected, QnRtn 9 (a corrupt MN or PW proves nothing);
3. MN not an active station of the registry -> rejected, QnRtn 4; PW differs -> rejected,
   QnRtn 3 (a station registered without a password is not checked; ``allow_unknown``
   accepts unregistered MNs, for demos); registry changes arrive by ``LISTEN
   offsite_registry`` (``StationRegistry.listen``), the periodic refresh is the fallback;
4. sub-packets (Flag D) are held per connection until their set is complete; a set still
   incomplete when the connection ends goes to ``ingest.rejected`` with its raw bytes;
5. data uploads (CN 2011/2051/2061/2031) -> ``env.readings``; a logger restart (CN 2081) -> a
   restart event on ``env.readings``; other uploads -> ``ingest.rejected`` with the raw
   bytes, as nothing downstream reads them yet; replies and heartbeats from the logger
   (CN 9xxx) are only logged.

Input rules (``contract.input_rules``, shared with MQTT, the API and the offline tools)
apply to every reading: a code that HJ 212-2017/2005 does not define (nor ``SBxxx``, nor the
station declares), or that holds a NUL, or a value that is not a finite number in range, goes
to ``ingest.rejected`` with the whole frame while the frame's valid codes are stored and
answered; a time outside the live window refuses the frame (kept, QnRtn 100).

Per-connection limits keep one logger from hurting the others: frames and bytes per second
(token buckets: reading stops, TCP pushes back on that sender only), a frame-size cap, an
idle timeout (3x the station's ``interval_s`` once it is
known, else ``idle_timeout``), and bounded reply queues. Refused input that was not
answered is kept within a budget per source address (:mod:`ingest.hj212.reject_budget`,
``rejects_per_min``), which writes a summary row for what it drops. A refused frame is kept
whole up to ``max_frame`` bytes (16 KiB); longer runs keep their first ``max_frame`` bytes.
Nothing blocks the loop: the station registry is read with async psycopg
(``storage/stations.py``) and refreshed in the background and on registry notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from contract.input_rules import InputError, check_time, clean_text, split_reading
from contract.records import Reading
from contract.settings import Settings, get_settings
from contract.topics import ENV_READINGS
from ingest.hj212 import build
from ingest.hj212.codec import (
    CHINA_TZ,
    DATA_COMMANDS,
    Frame,
    HJ212Error,
    parse_data_time,
    parse_frame,
    to_reading,
)
from ingest.hj212.framing import FrameSplitter
from ingest.hj212.reassembly import Reassembler
from ingest.hj212.reject_budget import Bucket as _Bucket
from ingest.hj212.reject_budget import RejectBudget
from ingest.publisher import Publisher
from storage.registry_listen import ALL, RegistryListener
from storage.stations import Station, load_credentials

__all__ = ["Hj212Server", "Limits", "StationRegistry", "QN_RTN"]

log = logging.getLogger(__name__)
SOURCE = "hj212-tcp"
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
#: HJ 212-2017 table 7 (request answers)
QN_RTN = {"ready": 1, "refused": 2, "pw": 3, "mn": 4, "st": 5, "flag": 6, "qn": 7, "cn": 8,
          "crc": 9, "unknown": 100}


class StationRegistry:
    """MN -> registered station, read from the ``stations`` table and refreshed."""

    def __init__(self, database_url: str | None, *, allow_unknown: bool = False,
                 refresh_s: float = 60.0, min_reload_s: float = 5.0) -> None:
        if not database_url and not allow_unknown:
            raise ValueError("a database URL is needed to check stations (or allow_unknown)")
        self.database_url = database_url
        self.allow_unknown = allow_unknown
        self.refresh_s = refresh_s
        self.min_reload_s = min_reload_s
        self.stations: dict[str, Station] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def load(self, force: bool = True) -> None:
        if not self.database_url:
            return
        async with self._lock:
            if not force and time.monotonic() - self._loaded_at < self.min_reload_s:
                return  # another connection just reloaded it
            self.stations = await load_credentials(self.database_url)
            self._loaded_at = time.monotonic()
        log.info("station registry: %d stations", len(self.stations))

    def listen(self) -> RegistryListener | None:
        """Reload at once on every registry notice about stations (a new password, a
        retired station); the ``refresh_s`` poll stays as the fallback."""
        if not self.database_url:
            return None

        async def changed(kind: str) -> None:
            if kind in ("station", ALL):
                await self._try_load(force=True)
        return RegistryListener(self.database_url, changed).start()

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh every ``refresh_s`` until ``stop``; a failed refresh keeps the old list."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.refresh_s)
            if not stop.is_set():
                await self._try_load(force=True)

    async def _try_load(self, force: bool) -> None:
        try:
            await self.load(force)
        except Exception as exc:  # DB away: keep serving with the list we have
            log.error("station registry refresh failed: %s", exc)

    async def check(self, mn: str | None, pw: str | None) -> tuple[int | None, Station | None]:
        """(QnRtn error code or None when accepted, the registered station if any)."""
        station = self.stations.get(mn or "")
        if station is None and mn and time.monotonic() - self._loaded_at > self.min_reload_s:
            await self._try_load(force=False)  # registered a moment ago? (rate-limited)
            station = self.stations.get(mn)
        if station is None:
            return (None if self.allow_unknown and mn else QN_RTN["mn"]), None
        if station.password is not None and station.password != pw:
            return QN_RTN["pw"], station
        return None, station


@dataclass(frozen=True)
class Limits:
    idle_timeout: float = 600.0
    max_frame: int = 16 * 1024
    frames_per_s: float = 200.0
    frame_burst: float = 400.0
    bytes_per_s: float = 1024 * 1024
    rejects_per_min: float = 600.0  # per source address (all its connections), not kept: counted
    reply_queue: int = 256
    quiet_flush_s: float = 0.3
    write_timeout: float = 10.0
    max_sets: int = 16


class _KafkaFailed(Exception):
    pass


class Hj212Server:
    def __init__(self, publisher: Publisher, registry: StationRegistry,
                 limits: Limits | None = None, tz: tzinfo = CHINA_TZ,
                 settings: Settings | None = None) -> None:
        self.publisher = publisher
        #: the input rules' limits and time window (the publisher's settings by default)
        self.settings = settings or getattr(publisher, "settings", None) or get_settings()
        self.registry = registry
        self.limits = limits or Limits()
        self.tz = tz
        self.server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()
        self.stats = {"frames": 0, "readings": 0, "rejected": 0, "suppressed": 0, "acked": 0}
        self.reject_budget = RejectBudget(self.limits.rejects_per_min)
        #: MN -> codes a station declares beyond the standards' (the registry may fill it)
        self.declared_codes: dict[str, frozenset[str]] = {}

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Load the registry, listen, return the port (useful with ``port=0``)."""
        await self.registry.load()
        self.server = await asyncio.start_server(self._handle, host, port, limit=2 ** 16)
        bound = self.server.sockets[0].getsockname()[1]
        log.info("HJ 212 server listening on %s:%d", host, bound)
        return bound

    @property
    def connections(self) -> int:
        return len(self._handlers)

    async def stop(self) -> None:
        """Stop listening and end every connection (unanswered uploads will be resent)."""
        if self.server is not None:
            self.server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)

    async def serve(self, stop: asyncio.Event, host: str = "127.0.0.1", port: int = 0) -> None:
        await self.start(host, port)
        refresher = asyncio.create_task(self.registry.run(stop))
        listener = self.registry.listen()
        try:
            await stop.wait()
        finally:
            refresher.cancel()
            if listener is not None:
                await listener.stop()
            await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(self, writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await conn.run(reader)
        except asyncio.CancelledError:
            pass  # server stopping; ending normally keeps asyncio from logging it as an error
        except Exception:
            log.exception("HJ 212 connection %s failed", conn.peer)
        finally:
            self._handlers.discard(task)  # type: ignore[arg-type]
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)


class _Connection:
    def __init__(self, server: Hj212Server, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.limits = lim = server.limits
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.source = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self.splitter = FrameSplitter(max_frame=lim.max_frame, max_garbage=lim.max_frame)
        self.reassembler = Reassembler(max_groups=lim.max_sets)
        self.frames = _Bucket(lim.frames_per_s, lim.frame_burst)
        self.bytes = _Bucket(lim.bytes_per_s, lim.bytes_per_s)
        self.replies: asyncio.Queue[tuple[asyncio.Future | None, bytes | None] | None] = \
            asyncio.Queue(maxsize=lim.reply_queue)
        self.idle_timeout = lim.idle_timeout
        self.failed = False

    async def run(self, reader: asyncio.StreamReader) -> None:
        replier = asyncio.create_task(self._reply_loop())
        try:
            while not self.failed:
                timeout = (self.limits.quiet_flush_s if self.splitter.pending_complete
                           else self.idle_timeout)
                try:
                    data = await asyncio.wait_for(reader.read(2 ** 16), timeout)
                except TimeoutError:
                    if self.splitter.pending_complete:
                        await self._pieces(self.splitter.flush_pending())
                        continue
                    log.info("HJ 212 %s idle for %.0fs: closing", self.peer, timeout)
                    break
                except (ConnectionError, OSError):
                    break
                if not data:
                    break
                await self.bytes.wait(len(data))
                await self._pieces(self.splitter.feed(data))
            if not self.failed:
                await self._pieces(self.splitter.close())
                await self._incomplete(self.reassembler.drain_incomplete()
                                       + self.reassembler.expire(_FAR_FUTURE))
                summary = self.server.reject_budget.drain(self.source)
                if summary is not None:
                    await self._keep(b"", summary.reason, None, summary.context)
        except _KafkaFailed:
            pass
        finally:
            await self.replies.put(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(replier, self.limits.write_timeout)
            replier.cancel()

    async def _pieces(self, pieces: list[tuple[str, bytes]]) -> None:
        for kind, raw in pieces:
            if kind == "garbage":
                if raw.strip(b"\r\n\t \0"):
                    await self._reject(raw, "HJ 212: garbage between frames", None)
                continue
            await self.frames.wait()
            self.server.stats["frames"] += 1
            await self._frame(raw)

    async def _frame(self, raw: bytes) -> None:
        try:
            frame = parse_frame(raw, tz=self.server.tz)
        except HJ212Error as exc:
            await self._reject(raw, f"HJ 212: {exc}", None)
            return
        if frame.crc_variant is None:
            await self._reject(raw, f"HJ 212: {frame.error}", frame, QN_RTN["crc"])
            return
        code, station = await self.server.registry.check(frame.mn, frame.header.get("PW"))
        if code is not None:
            reason = "unknown MN" if code == QN_RTN["mn"] else "wrong PW"
            await self._reject(raw, f"HJ 212: {reason} {frame.mn!r}", frame, code)
            return
        if station is not None and station.interval_s:
            self.idle_timeout = max(self.limits.idle_timeout, 3.0 * station.interval_s)
        cn = frame.cn or ""
        if cn.startswith("9"):
            log.debug("HJ 212 %s: CN %s from %s", self.peer, cn, frame.mn)
            return
        if cn == "2081":  # logger restart: the env detector notes it before a gap
            await self._restart(frame, station, raw)
            return
        if cn not in DATA_COMMANDS:
            await self._reject(raw, f"HJ 212: CN {cn} not handled (kept)", frame, budget=False)
            if frame.needs_ack and cn.startswith("2"):
                await self._enqueue(None, build.reply_data(frame))
            return
        whole = self.reassembler.add(frame)
        await self._incomplete(self.reassembler.drain_incomplete())
        if whole is None:  # held until the set is complete; the logger waits for each answer
            if frame.needs_ack:
                await self._enqueue(None, build.reply_data(frame))
            return
        try:
            reading = to_reading(whole)
        except HJ212Error as exc:
            await self._reject(whole.raw.encode(), f"HJ 212: {exc}", frame, QN_RTN["unknown"])
            return
        update: dict[str, object] = {"source": SOURCE}
        if station is not None and station.interval_s:
            update["interval_s"] = station.interval_s
        reading = reading.model_copy(update=update)
        try:  # the input rules: bad codes are kept apart, the frame's valid codes flow on
            reading, refused = split_reading(
                reading, self.server.settings,
                declared=self.server.declared_codes.get(reading.station, frozenset()))
        except InputError as exc:
            await self._reject(whole.raw.encode(), f"HJ 212: {exc}", frame, QN_RTN["unknown"],
                               budget=False)
            return
        if refused:  # answered with a 9014 below, so kept whatever the budget
            await self._reject(whole.raw.encode(), "HJ 212: codes refused (the others are "
                               "stored): " + "; ".join(refused)[:2000], frame, budget=False)
        if reading is None:
            return
        try:
            future = await self.server.publisher.send(ENV_READINGS, reading.station, reading)
        except Exception as exc:
            raise self._fail(exc) from exc
        self.server.stats["readings"] += 1
        await self._enqueue(future, build.reply_data(frame) if frame.needs_ack else None)

    async def _restart(self, frame: Frame, station: object, raw: bytes) -> None:
        """CN 2081 becomes a restart event on ``env.readings`` (RestartTime, else DataTime)."""
        try:
            text = frame.extra.get("RestartTime")
            moment = parse_data_time(text, self.server.tz) if text else frame.data_time
        except HJ212Error:
            moment = frame.data_time
        if moment is None or not frame.mn:
            await self._reject(raw, "HJ 212: restart without a time", frame, QN_RTN["unknown"])
            return
        try:
            check_time(moment, "RestartTime", self.server.settings)
        except InputError as exc:
            await self._reject(raw, f"HJ 212: {exc}", frame, QN_RTN["unknown"])
            return
        event = Reading(station=frame.mn, time=moment, values={}, event="restart", source=SOURCE)
        try:
            future = await self.server.publisher.send(ENV_READINGS, event.station, event)
        except Exception as exc:
            raise self._fail(exc) from exc
        await self._enqueue(future, build.reply_data(frame) if frame.needs_ack else None)

    async def _incomplete(self, sets: list[list[Frame]]) -> None:
        """Sets given up on: their packets were answered, so they are kept whatever the budget."""
        for parts in sets:
            await self._reject(b"".join(p.raw.encode() for p in parts),
                               "HJ 212: incomplete sub-packet set", parts[0], budget=False)

    async def _reject(self, raw: bytes, reason: str, frame: Frame | None,
                      qn_rtn: int | None = None, budget: bool = True) -> None:
        """Keep refused input in ``ingest.rejected``; input that was not answered with a 9014
        (garbage, refused frames) is kept only within the connection's budget."""
        stats = self.server.stats
        keep, summary = (True, None) if not budget else \
            self.server.reject_budget.take(self.source, reason)
        if summary is not None:
            await self._keep(b"", summary.reason, None, summary.context)
        if keep:
            await self._keep(raw, reason, frame)
        else:
            stats["suppressed"] += 1
            log.debug("HJ 212 %s: reject budget spent, dropped: %s", self.peer,
                      clean_text(reason, 200))
        if qn_rtn is not None and frame is not None and frame.needs_ack and frame.mn:
            with contextlib.suppress(HJ212Error):
                await self._enqueue(None, build.reply_request(frame, qn_rtn))

    async def _keep(self, raw: bytes, reason: str, frame: Frame | None,
                    extra: dict | None = None) -> None:
        """Write one dead letter (the publisher cleans NUL and surrogates out of the text)."""
        context = {"peer": self.peer, "mn": frame.mn if frame else None, **(extra or {})}
        try:
            await self.server.publisher.reject(raw, reason, **context)
        except Exception as exc:
            raise self._fail(exc) from exc
        self.server.stats["rejected"] += 1

    async def _enqueue(self, future: asyncio.Future | None, reply: str | None) -> None:
        if future is None and reply is None:
            return
        await self.replies.put((future, reply.encode() if reply else None))

    def _fail(self, exc: BaseException, what: str = "Kafka failed") -> _KafkaFailed:
        if not self.failed:
            log.error("HJ 212 %s: %s (%s); closing, later uploads unanswered", self.peer,
                      what, exc)
        self.failed = True
        self.writer.close()
        return _KafkaFailed(str(exc))

    async def _reply_loop(self) -> None:
        """Answer in arrival order, each only after its record is acknowledged. After a
        failure it only drains the queue (so the reader never blocks on it)."""
        while (item := await self.replies.get()) is not None:
            future, reply = item
            if self.failed:
                continue
            try:
                if future is not None:
                    await future
            except Exception as exc:
                self._fail(exc)
                continue
            if reply is None:
                continue
            try:
                self.writer.write(reply)
                await asyncio.wait_for(self.writer.drain(), self.limits.write_timeout)
            except (OSError, TimeoutError) as exc:
                self._fail(exc, "cannot answer")
                continue
            self.server.stats["acked"] += 1


