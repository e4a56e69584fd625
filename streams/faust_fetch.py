"""How long a fetch of the worker's Kafka consumer may wait at the broker for records.

Faust 0.15.3 builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` written into the
code. A Kafka broker answers such a fetch as soon as a record arrives (``fetch_min_bytes``
is 1), but the embedded Tansu holds it for the whole wait: measured on Tansu, a record
produced into an idle topic reached a waiting consumer after 0.38 s at the median (0.76 s
at most) with 1500 ms, 0.06 s with 500 ms and 0.007 s with 50 ms. A clue crosses two
consumer hops in the worker (readings or frames to the detector agent, clues to the
sink), so this alone cost up to 1.5 s of a clue's latency. ``apply(wait_s)`` makes the
consumer use ``Settings.consumer_fetch_wait_s`` (0.05 s) instead: an idle worker then asks
the broker 20 times a second, a negligible load; a busy one gets full fetches at once.
"""

from __future__ import annotations

import functools
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_ORIGINAL = AIOKafkaConsumerThread._create_worker_consumer
_wait_ms: list[int] = []


def apply(wait_s: float) -> None:
    """Every worker consumer made from now on waits at most ``wait_s`` per fetch."""
    _wait_ms[:] = [max(1, int(wait_s * 1000))]
    if AIOKafkaConsumerThread._create_worker_consumer is not _create_worker_consumer:
        AIOKafkaConsumerThread._create_worker_consumer = (  # type: ignore[method-assign]
            _create_worker_consumer)


@functools.wraps(_ORIGINAL)
def _create_worker_consumer(self: AIOKafkaConsumerThread, transport: Any) -> Any:
    consumer = _ORIGINAL(self, transport)
    # read by AIOKafkaConsumer.start() when it builds its Fetcher (aiokafka 0.11 to 0.14;
    # tests/streams/test_faust_fetch.py fails if that changes)
    consumer._fetch_max_wait_ms = _wait_ms[0]
    return consumer
