"""``bench.storage_worker``: the ceiling run's worker keeps the storage path and nothing
that judges readings."""

from __future__ import annotations

from bench.storage_worker import DETECTION, storage_app
from contract.settings import Settings
from contract.topics import ENV_READINGS


def test_storage_worker_runs_the_sinks_without_env_detection() -> None:
    app = storage_app(Settings())
    assert "streams.sinks.readings_sink" in app.agents
    assert not set(DETECTION) & set(app.agents)
    readers = [name for name, agent in app.agents.items()
               if ENV_READINGS.name in {t for t in agent.channel.topics}]
    assert readers == ["streams.sinks.readings_sink"]
