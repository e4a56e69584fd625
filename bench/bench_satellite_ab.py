"""Old against new ``detect_files`` in one process, alternating rounds, with the raw read.

Why: on a shared machine timings drift by 2x between runs, so a before/after comparison is
only fair when both run side by side. The old ``detectors`` package is exported from a git
commit into a temporary folder under another name (``detectors_old``) so both import in one
process. Usage: ``python -m bench.bench_satellite_ab COMMIT [SIZE] [DIR] [ROUNDS]``; the pair
is ``bench_satellite_speed``'s (made if missing).
"""

from __future__ import annotations

import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.bench_satellite_memory import synthesise
from bench.bench_satellite_speed import raw_read, timed


def old_detect(commit: str, into: Path) -> Callable[..., Any]:
    """``detect_files`` of ``commit``, imported as package ``detectors_old``."""
    tar = subprocess.run(["git", "archive", commit, "detectors"], check=True,
                         capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    pkg = into / "detectors_old"
    (into / "detectors").rename(pkg)
    for f in pkg.glob("*.py"):
        text = f.read_text().replace("from detectors.", "from detectors_old.")
        f.write_text(text.replace("from detectors import", "from detectors_old import"))
    sys.path.insert(0, str(into))
    from detectors_old.satellite_files import detect_files  # type: ignore[import-not-found]
    return detect_files  # type: ignore[no-any-return]


def main() -> None:
    commit = sys.argv[1]
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    out = Path(sys.argv[3] if len(sys.argv) > 3 else "/tmp")
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 6
    before, after = out / f"bench_before_{size}.tif", out / f"bench_after_{size}.tif"
    if not before.exists():
        synthesise(before, size, False, 1)
    if not after.exists():
        synthesise(after, size, True, 2)
    from detectors.satellite_files import detect_files

    with tempfile.TemporaryDirectory() as tmp:
        fns = {"old": old_detect(commit, Path(tmp)), "new": detect_files}
        runs: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
        reads, read_cpu, polygons = [], [], {}
        for i in range(rounds):
            _, wall, cpu = timed(raw_read, [before, after])
            reads.append(wall)
            read_cpu.append(cpu)
            for name in ("old", "new") if i % 2 == 0 else ("new", "old"):
                t, cpu = time.perf_counter(), time.process_time()
                res = fns[name](before, after, workers=2)
                polygons[name] = len(res.polygons)
                runs[name].append((time.perf_counter() - t, time.process_time() - cpu))
            print(f"round {i + 1}: raw read {reads[-1]:.2f} s; " + "; ".join(
                f"{n} {runs[n][-1][0]:.2f} s ({runs[n][-1][1]:.2f} CPU s, ratio "
                f"{reads[-1] / runs[n][-1][0]:.2f})" for n in ("old", "new")), flush=True)
    r, rc = statistics.median(reads), statistics.median(read_cpu)
    for name, got in runs.items():
        wall = statistics.median(w for w, _ in got)
        cpu = statistics.median(c for _, c in got)
        print(f"median {name}: detect {wall:.2f} s ({cpu:.2f} CPU s), raw read {r:.2f} s "
              f"({rc:.2f} CPU s), detect/read speed ratio {r / wall:.2f}, CPU ratio "
              f"{rc / cpu:.2f} ({polygons[name]} polygons)")


if __name__ == "__main__":
    main()
