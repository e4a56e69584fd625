"""``GET /ui/config``: what the pages read before sign-in (the base map tiles setting)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from contract.settings import get_settings


@pytest.fixture()
def tiled(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("OFFSITE_DATABASE_URL", fresh_db)
    monkeypatch.setenv("OFFSITE_MAP_TILE_URL", "https://tiles.example.gov.cn/{z}/{x}/{y}.png")
    monkeypatch.setenv("OFFSITE_MAP_TILE_ATTRIBUTION", "省测绘地理信息局")
    get_settings.cache_clear()
    from api.app import app

    with TestClient(app) as c:
        yield c
    get_settings.cache_clear()


def test_tile_url_comes_from_the_settings(tiled: TestClient) -> None:
    cfg = tiled.get("/ui/config").json()  # no token needed: nothing secret in it
    assert cfg == {"map_tile_url": "https://tiles.example.gov.cn/{z}/{x}/{y}.png",
                   "map_tile_attribution": "省测绘地理信息局",
                   "languages": ["zh-CN", "en"], "default_language": "zh-CN"}


def test_no_tile_url_by_default(api: TestClient) -> None:
    assert api.get("/ui/config").json()["map_tile_url"] is None
