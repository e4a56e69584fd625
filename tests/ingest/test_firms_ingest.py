"""FIRMS CSVs from the satellite inbox and from a polled area URL reach ``sat.fires``.

On the session's real Kafka (Tansu); the URL is a local HTTP server (these machines reach no
outside host) answering the real MODIS file. MODIS Collection 6.1 NRT Hotspot / Active Fire
Detections MCD14DL, NASA FIRMS, doi:10.5067/FIRMS/MODIS/MCD14DL.NRT.0061 (read by path from
``samples/satellite/firms``; copied only into the test's temporary inbox).
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import shutil
import threading
import uuid
from pathlib import Path

from contract.records import FireBatch, Rejected
from contract.settings import Settings
from ingest.firms import FirmsPoller, area_cells
from ingest.publisher import Publisher
from ingest.satellite import InboxIngester, InboxOptions
from offsite.services import EmbeddedServices
from tests.ingest.test_hj212_server import _consume

FIRMS = Path(__file__).resolve().parents[2] / "samples" / "satellite" / \
    "firms" / "modis_2022-05-28_06-04_shandong_box.csv"


def test_inbox_csvs_go_to_sat_fires_and_bad_ones_to_dead_letters(
        services: EmbeddedServices, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    settings = Settings(broker_url=services.broker_url, partitions=2)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    good = f"modis-{tag}.csv"
    shutil.copy(FIRMS, inbox / good)
    lines = FIRMS.read_text().splitlines()
    (inbox / f"rows-{tag}.csv").write_text(
        "\n".join([lines[0], lines[1], "37.5,118.2,bad,1,1,2022-05-29,0300,T,44,6.1NRT,299,7,D",
                   lines[2]]) + "\n")
    (inbox / f"stations-{tag}.csv").write_text("id,name,lon,lat\nS1,x,117,36\n")
    (inbox / f"binary-{tag}.csv").write_bytes(lines[0].encode() + b"\n\xff\xfe\x00\x9c" * 3)
    total = len(lines) - 1

    async def main() -> tuple[list, list]:
        publisher = Publisher(settings, source="satellite-inbox")
        await publisher.start()
        try:
            ingester = InboxIngester(inbox, tmp_path / "state",
                                     publisher, InboxOptions(settle_s=0))
            await ingester.scan_once()
            await ingester.scan_once()  # processed files are not sent twice
        finally:
            await publisher.stop()
        fires = await _consume(settings, "sat.fires",
                               lambda f: sum(len(FireBatch.loads(v).detections)
                                             for v in f) >= total + 2,
                               lambda k, v: tag in FireBatch.loads(v).source)
        rejected = await _consume(settings, "ingest.rejected", lambda f: len(f) >= 3,
                                  lambda k, v: tag in str(Rejected.loads(v).context))
        return fires, rejected

    fires, rejected = asyncio.run(main())
    batches = [FireBatch.loads(v) for v in fires]
    from_good = [b for b in batches if b.source == good]
    assert sum(len(b.detections) for b in from_good) == total
    assert {b.sha256 for b in from_good} == {hashlib.sha256(FIRMS.read_bytes()).hexdigest()}
    assert all(len(b.cell) == 3 for b in from_good) and len({b.cell for b in from_good}) > 1
    assert sum(len(b.detections) for b in batches if b.source == f"rows-{tag}.csv") == 2
    reasons = {Rejected.loads(v).context.get("name"): Rejected.loads(v) for v in rejected}
    assert "not a FIRMS active-fire CSV" in reasons[f"stations-{tag}.csv"].reason
    assert "no usable row" in reasons[f"binary-{tag}.csv"].reason
    row = reasons[f"rows-{tag}.csv"]
    assert row.reason.startswith("FIRMS row 3:") and row.raw.startswith(b"37.5,118.2,bad")


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def test_polled_area_url_is_published_once_per_new_answer(services: EmbeddedServices) -> None:
    settings = Settings(broker_url=services.broker_url, partitions=2)
    handler = type("Handler", (_Handler,), {"body": FIRMS.read_bytes(), "hits": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}/api/area/csv/SECRETKEY/MODIS_NRT/114,34,123,39/1"

    async def main() -> tuple[list[int], list]:
        publisher = Publisher(settings, source="firms-poll")
        await publisher.start()
        stop = asyncio.Event()
        try:
            poller = FirmsPoller(url, publisher, interval_s=0.2)
            task = asyncio.create_task(poller.run(stop))
            while handler.hits < 3:
                await asyncio.sleep(0.1)
            stop.set()
            await task
            sent = [await poller.poll_once()]
        finally:
            await publisher.stop()
        fires = await _consume(settings, "sat.fires",
                               lambda f: sum(len(FireBatch.loads(v).detections)
                                             for v in f) >= 355,
                               lambda k, v: FireBatch.loads(v).source.endswith(f":{port}"))
        return sent, fires

    try:
        sent, fires = asyncio.run(main())
    finally:
        server.shutdown()
        server.server_close()
    batches = [FireBatch.loads(v) for v in fires]
    assert sent == [0]  # the same answer again: nothing new sent
    assert sum(len(b.detections) for b in batches) == 355  # sent once, not per poll
    # every cell of the box learns the data's time, those without fires too
    newest = max(d.time for b in batches for d in b.detections)
    assert {b.cell for b in batches} == set(area_cells(url))
    assert {b.observed_until for b in batches} == {newest}
    assert any(not b.detections for b in batches)
    assert all("SECRETKEY" not in b.source for b in batches)  # the MAP_KEY is never kept


def test_area_cells_of_a_firms_url() -> None:
    box = area_cells("https://firms.example/api/area/csv/KEY/VIIRS_SNPP_NRT/118,27,123,31.3/1")
    assert len(box) == 20 and all(len(c) == 3 for c in box)
    assert "wtm" in box  # Hangzhou
    assert area_cells("https://firms.example/api/area/csv/KEY/MODIS_NRT/world/1") == []
    assert area_cells("https://firms.example/api/area/csv/KEY/MODIS_NRT/9,9,1,1/1") == []
    assert area_cells("https://firms.example/fires.csv") == []
