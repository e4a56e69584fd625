"""A worker without env detection, for ``bench_env_pipeline --storage-only``.

The same app as ``offsite worker`` less the agents that judge ``env.readings`` (the per-
station detector, the region stage, the power router): what is left is MQTT -> Kafka ->
readings sink -> COPY, the storage path alone. Its rate against the COPY floor is the
ceiling that the pipeline with detection cannot pass on the same machine. Not for
production: a worker group must run the same agents in every member.
"""

from __future__ import annotations

import asyncio

import faust

from contract.settings import Settings, get_settings
from contract.topic_admin import ensure_topics
from contract.topics import ENV_READINGS
from streams.app import build_streams
from streams.worker import QuietWorker

DETECTION = ("streams.env.env_monitor", "streams.env_region.region",
             "streams.power.power_route")


def storage_app(settings: Settings) -> faust.App:
    """The worker's app less the agents of ``DETECTION``."""
    streams = build_streams(settings)
    for name in DETECTION:
        del streams.app.agents[name]
    # the readings sink is the only consumer left: no decoded record held for the others
    streams.shared_decoder(ENV_READINGS).consumers = 1
    return streams.app


def main() -> None:
    settings = get_settings()
    asyncio.run(ensure_topics(settings, extra=()))
    QuietWorker(storage_app(settings), loglevel=settings.log_level.lower(),
                quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
