"""Oversized frames and slow-drip loggers do not starve the others (the flooding logger is
``test_hj212_server.py``): the same in-process server on the session's Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from contract.records import Rejected
from contract.settings import Settings
from ingest.hj212.server import Limits
from tests.ingest.test_hj212_server import _consume, _frame, _Logger, _register, _server
from tests.ingest.test_hj212_server import settings as settings  # noqa: F401 - fixture

MAX_FRAME = 4096


def test_slow_drip_and_oversized_frames_do_not_delay_others(settings: Settings) -> None:  # noqa: F811
    tag = uuid.uuid4().hex[:6].upper()
    good_mn, drip_mn, big_mn = f"G{tag}", f"D{tag}", f"B{tag}"
    _register(settings.database_url or "", *((mn, "pw-ok", None)
                                              for mn in (good_mn, drip_mn, big_mn)))
    limits = Limits(max_frame=MAX_FRAME)
    drip_frame = _frame(drip_mn, 5, qn="20260301050000555")
    # a well-formed frame whose segment is over the cap: values pad it to ~3x MAX_FRAME
    big = _frame(big_mn, 6, values={f"a{n:05d}": float(n) for n in range(400)})
    assert len(big) > MAX_FRAME
    dripped: list[float] = []

    async def drip(log: _Logger) -> None:  # 1 byte every 100 ms, until cancelled
        for byte in drip_frame:
            log.writer.write(bytes([byte]))
            await log.writer.drain()
            dripped.append(time.perf_counter())
            await asyncio.sleep(0.1)

    async def main() -> tuple[list[float], dict]:
        async with _server(settings, limits) as (server, port):
            drip_log, big_log = await _Logger.connect(port), await _Logger.connect(port)
            dripper = asyncio.create_task(drip(drip_log))
            await big_log.send(big)
            await asyncio.sleep(1.2)  # the drip is well under way
            log = await _Logger.connect(port)
            latencies = []
            for h in range(10):
                started = time.perf_counter()
                await log.send(_frame(good_mn, h, qn=f"20260301{h:02d}0000777"))
                assert (await log.answer(timeout=5)).cn == "9014"
                latencies.append(time.perf_counter() - started)
                await big_log.send(big)  # more oversized frames while the good one talks
            dripper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dripper
            for one in (drip_log, big_log, log):
                one.writer.transport.abort()
            return latencies, dict(server.stats)

    latencies, stats = asyncio.run(main())
    print(f"latency beside a slow-drip and an oversized-frame logger: max "
          f"{max(latencies) * 1000:.1f} ms, mean {sum(latencies) / len(latencies) * 1000:.1f} ms;"
          f" {len(dripped)} bytes dripped; {stats}")
    assert max(latencies) < 1.0
    assert len(dripped) >= 10  # the drip was really going on meanwhile
    rejected = asyncio.run(_consume(
        settings, "ingest.rejected", bool,
        lambda k, v: f"MN={big_mn}".encode() in Rejected.loads(v).raw, timeout=20))
    assert rejected, "the oversized frame was not kept as rejected"
    reasons = {Rejected.loads(v).reason for v in rejected}
    print("oversized frame rejected as:", reasons)
    assert all(reason.startswith("HJ 212: ") for reason in reasons)
