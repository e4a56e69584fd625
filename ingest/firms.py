"""FIRMS active-fire CSVs to ``sat.fires``: from the satellite inbox, or polled from a URL.

Why: FIRMS hotspots arrive as CSV, either downloaded into the same inbox as scenes (told
apart by extension and header: a ``.csv`` whose first line has ``latitude``, ``longitude``
and ``acq_date``) or fetched from a FIRMS-style area URL on a schedule
(``firms_poll_url`` every ``firms_poll_s``; the NASA API ``/api/area/csv/KEY/SOURCE/AREA/
DAYS`` answers such a table). Detections are grouped by region cell (a geohash of 3
characters, about 156 x 156 km at the equator), the key of ``sat.fires``, so each place's
persistent-heat history lives on one worker; a cell's rows go out in records of at most
``ROWS_PER_RECORD``. A file that is not a FIRMS table, or a row that cannot be read, goes to
the dead-letter store with its bytes and the reason; the rest flows. A poll answering the
same bytes as the last one is not sent again (the window of an area URL overlaps itself,
and the stream drops repeated rows anyway).

Every record carries the table's newest acquisition time (``observed_until``): the data's
clock, by which the stream closes events that can no longer grow. A poll of an area URL
with a box (``.../W,S,E,N/DAYS``) also sends that time, with no detections, to each cell of
the box that had none this time, so a fire in a cell that has gone quiet still closes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contract.records import FireBatch, FireDetection
from contract.topics import SAT_FIRES
from detectors.fire_firms import FirmsError, looks_like_firms, parse_firms
from geo.zones import geohash, geohash_cover

log = logging.getLogger(__name__)
CELL_PRECISION = 3
ROWS_PER_RECORD = 1000  # about 250 kB of JSON: under max_record_bytes
MAX_FIRMS_BYTES = 64 * 1024 * 1024


def is_firms_file(path: Path) -> bool:
    """A CSV in the inbox is taken as FIRMS by extension; its header is checked on reading."""
    return path.suffix.lower() == ".csv"


def batches(detections: Sequence[FireDetection], source: str, sha256: str,
            cover: Sequence[str] = ()) -> list[FireBatch]:
    """The records of one file: by region cell, in time order, bounded in size, each with
    the file's newest acquisition time; ``cover``: cells of the polled area, which get that
    time without detections where they had none."""
    cells: dict[str, list[FireDetection]] = {}
    for d in sorted(detections, key=lambda d: (d.time, d.lat, d.lon)):
        cells.setdefault(geohash(d.lon, d.lat, CELL_PRECISION), []).append(d)
    until = max((d.time for d in detections), default=None)
    out = [FireBatch(source=source[:512], sha256=sha256, cell=cell,
                     detections=rows[i:i + ROWS_PER_RECORD], observed_until=until)
           for cell, rows in sorted(cells.items())
           for i in range(0, len(rows), ROWS_PER_RECORD)]
    if until is not None:
        out += [FireBatch(source=source[:512], sha256=sha256, cell=cell, observed_until=until)
                for cell in sorted(set(cover) - set(cells))]
    return out


def area_cells(url: str) -> list[str]:
    """The region cells of a FIRMS area URL's box (``/area/csv/KEY/SOURCE/W,S,E,N/DAYS``);
    none for ``world`` or a URL of another shape."""
    m = re.search(r"/area/csv/[^/]+/[^/]+/(-?[\d.]+),(-?[\d.]+),(-?[\d.]+),(-?[\d.]+)(/|$)",
                  urllib.parse.urlsplit(url).path)
    if m is None:
        return []
    west, south, east, north = (float(v) for v in m.groups()[:4])
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        return []
    return geohash_cover(west, south, east, north, CELL_PRECISION)


async def publish_firms(data: bytes, source: str, publisher: Any,
                        cover: Sequence[str] = (), **context: Any) -> int:
    """Publish one FIRMS table (acks=all); returns detections sent. A table that is not FIRMS
    is dead-lettered whole, bad rows one by one. ``cover``: ``batches``."""
    if not looks_like_firms(data[:4096]):
        await publisher.reject(data, "not a FIRMS active-fire CSV: the first line has no "
                               "latitude, longitude and acq_date columns", **context)
        return 0
    try:
        parsed = await asyncio.to_thread(parse_firms, data)
    except FirmsError as exc:
        await publisher.reject(data, f"unusable FIRMS file: {exc}", **context)
        return 0
    for bad in parsed.bad_rows:
        await publisher.reject(bad.text.encode(), f"FIRMS row {bad.line}: {bad.reason}",
                               line=bad.line, **context)
    records = batches(parsed.detections, source, parsed.sha256, cover)
    futures = [await publisher.send(SAT_FIRES, r.cell, r) for r in records]
    for f in futures:
        await f
    log.info("FIRMS %s: %d detection(s) in %d record(s), %d bad row(s)", source,
             len(parsed.detections), len(records), len(parsed.bad_rows))
    return len(parsed.detections)


async def ingest_firms_file(path: Path, publisher: Any) -> int:
    """One FIRMS CSV from the inbox (read whole: FIRMS files are small)."""
    size = path.stat().st_size
    if size > MAX_FIRMS_BYTES:
        await publisher.reject(path.read_bytes()[:65536], f"FIRMS file of {size} bytes is "
                               f"over {MAX_FIRMS_BYTES}", path=str(path), name=path.name)
        return 0
    data = await asyncio.to_thread(path.read_bytes)
    return await publish_firms(data, path.name, publisher, path=str(path), name=path.name)


class FirmsPoller:
    """Fetches a FIRMS-style area URL every ``interval_s`` and publishes what is new."""

    def __init__(self, url: str, publisher: Any, interval_s: float = 3600.0,
                 timeout_s: float = 60.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"FIRMS poll URL must be http(s): {url[:80]!r}")
        self.url = url
        self.publisher = publisher
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.last_sha: str | None = None
        self.polls = 0
        # the host only: a FIRMS area URL carries its MAP_KEY in the path, never stored
        self.source = "firms-poll:" + urllib.parse.urlsplit(url).netloc
        self.cover = area_cells(url)  # the box's cells: they learn the data's time too

    def _fetch(self) -> bytes:
        with urllib.request.urlopen(self.url, timeout=self.timeout_s) as resp:  # noqa: S310
            return resp.read(MAX_FIRMS_BYTES + 1)

    async def poll_once(self) -> int:
        """One fetch; returns detections sent (0 when the answer did not change)."""
        self.polls += 1
        data = await asyncio.to_thread(self._fetch)
        sha = hashlib.sha256(data).hexdigest()
        if sha == self.last_sha:
            return 0
        source = self.source
        if len(data) > MAX_FIRMS_BYTES:
            await self.publisher.reject(data[:65536], "FIRMS answer over "
                                        f"{MAX_FIRMS_BYTES} bytes", url=source)
            sent = 0
        else:
            sent = await publish_firms(data, source, self.publisher, self.cover, url=source)
        self.last_sha = sha
        return sent

    async def run(self, stop: asyncio.Event) -> None:
        log.info("polling %s every %.0f s", self.source, self.interval_s)
        while not stop.is_set():
            try:
                await self.poll_once()
            except Exception as exc:  # the server away: try again at the next interval
                log.warning("FIRMS poll failed: %s", exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass
