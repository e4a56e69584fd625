"""The fire plug-in's config from the one settings object (one place maps ``fire_*``)."""

from __future__ import annotations

from contract.settings import Settings
from detectors.fire_monitor import FireConfig


def fire_config(settings: Settings) -> FireConfig:
    return FireConfig(dedupe_minutes=settings.fire_dedupe_minutes,
                      group_km=settings.fire_group_km, group_hours=settings.fire_group_hours,
                      persistent_km=settings.fire_persistent_km,
                      persistent_days=settings.fire_persistent_days,
                      persistent_window_days=settings.fire_persistent_window_days,
                      harvest_months=tuple(settings.fire_harvest_months))
