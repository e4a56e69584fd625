"""``contract.settings.overridden``: how a server run inside this process (``serve_api``)
gets its settings without reading ``OFFSITE_`` variables outside the settings module."""

from __future__ import annotations

import os

import pytest

from contract.settings import get_settings, overridden


def test_override_applies_then_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFSITE_API_PORT", "8123")
    monkeypatch.delenv("OFFSITE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    before = get_settings()
    with overridden(database_url="postgresql://x@h/db", api_port="9001") as inside:
        assert inside is get_settings()
        assert inside.database_url == "postgresql://x@h/db" and inside.api_port == 9001
        assert os.environ["OFFSITE_DATABASE_URL"] == "postgresql://x@h/db"  # for children
    after = get_settings()
    assert after is not inside and after.api_port == 8123 == before.api_port
    assert "OFFSITE_DATABASE_URL" not in os.environ and after.database_url == before.database_url
    get_settings.cache_clear()


def test_override_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match="not settings fields"), overridden(databse_url="x"):
        pass


def test_satellite_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFSITE_SAT_CONFIRM_LOOKS", "3")
    monkeypatch.setenv("OFFSITE_SAT_THREADS", "5")
    with overridden(sat_expire_days="30") as s:
        assert (s.sat_confirm_looks, s.sat_window_looks, s.sat_expire_days, s.sat_threads) \
            == (3, 4, 30.0, 5)
    get_settings.cache_clear()
