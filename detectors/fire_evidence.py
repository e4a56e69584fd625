"""A fire event's evidence and clue: a PNG map, the detection table, the source's sha256.

Why: an inspector going out for a burnt field wants to see where each hot pixel fell
against the farmland and enterprise zones (the map draws every detection as its real
footprint, ``scan`` x ``track`` km, coloured by FRP), anyone re-checking wants the rows
themselves (the CSV has FIRMS' own columns), and the source file's sha256 ties both to the
file as NASA delivered it. Deterministic for the same input, so a re-sent clue carries
byte-identical evidence. matplotlib's object API on the Agg canvas (no pyplot): safe in
worker threads.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from contract.clue import Clue, EvidenceRef  # noqa: E402
from detectors.fire import KM_PER_DEG_LAT, KM_PER_DEG_LON_EQ, FireEvent, FireZones  # noqa: E402

DETECTOR = "detectors.fire"
VERSION = "1"
ZONE_COLOURS = {"protected_farmland": "#9ccc65", "forest": "#2e7d32",
                "enterprise_site": "#757575", "jurisdiction": "none"}
TABLE_COLUMNS = ("latitude", "longitude", "acq_datetime_utc", "satellite", "instrument",
                 "confidence", "confidence_01", "frp", "scan", "track", "brightness",
                 "daynight")


def _ref(media_type: str, name: str, content: bytes) -> EvidenceRef:
    return EvidenceRef(media_type=media_type, name=name, content=content,
                       sha256=hashlib.sha256(content).hexdigest())


def detection_table(event: FireEvent) -> bytes:
    """The event's detections as CSV (UTF-8), FIRMS' columns plus the 0-1 confidence."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(TABLE_COLUMNS)
    for d in event.detections:
        w.writerow([f"{d.lat:.5f}", f"{d.lon:.5f}", d.time.strftime("%Y-%m-%dT%H:%MZ"),
                    d.satellite, d.instrument, d.confidence_raw, f"{d.confidence:.2f}",
                    f"{d.frp:.2f}", f"{d.scan:.2f}", f"{d.track:.2f}",
                    "" if d.brightness is None else f"{d.brightness:.2f}", d.daynight])
    return out.getvalue().encode()


def event_png(event: FireEvent, zones: FireZones | None) -> bytes:
    """Map of the detections' footprints over the zones, about 10 km around the event."""
    fig = Figure(figsize=(5, 5), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    kx = KM_PER_DEG_LON_EQ * math.cos(math.radians(event.lat))
    half_km = max(5.0, *(3 * max(d.scan, d.track) for d in event.detections))
    west, east = event.lon - half_km / kx, event.lon + half_km / kx
    south, north = event.lat - half_km / KM_PER_DEG_LAT, event.lat + half_km / KM_PER_DEG_LAT
    if zones is not None:
        for z in zones.zones:
            minx, miny, maxx, maxy = z.geometry.bounds
            if maxx < west or minx > east or maxy < south or miny > north:
                continue
            colour = "#e53935" if z.heat_source else ZONE_COLOURS.get(z.kind, "#90a4ae")
            for poly in getattr(z.geometry, "geoms", [z.geometry]):
                if not hasattr(poly, "exterior"):
                    continue
                x, y = poly.exterior.xy
                ax.fill(x, y, facecolor=colour, alpha=0.0 if colour == "none" else 0.35,
                        edgecolor="#455a64", linewidth=0.8)
                ax.annotate(z.id, (poly.representative_point().x,
                                   poly.representative_point().y), fontsize=6, color="#263238")
    top = max(event.max_frp, 1.0)
    cmap = matplotlib.colormaps["YlOrRd"]
    for d in event.detections:
        w, h = d.scan / kx, d.track / KM_PER_DEG_LAT
        ax.add_patch(Rectangle((d.lon - w / 2, d.lat - h / 2), w, h,
                               facecolor=cmap(0.35 + 0.65 * min(1.0, d.frp / top)),
                               edgecolor="#b71c1c", linewidth=1.0, alpha=0.8))
    ax.plot([event.lon], [event.lat], marker="+", color="black", markersize=10)
    ax.set_xlim(west, east)
    ax.set_ylim(south, north)
    ax.set_aspect(KM_PER_DEG_LAT / kx)  # equal kilometres both ways
    ax.set_xlabel("lon")
    ax.set_ylabel("lat")
    ax.tick_params(labelsize=7)
    ax.set_title(f"{event.kind} {event.start:%Y-%m-%d %H:%M}Z-{event.end:%H:%M}Z\n"
                 f"{len(event.detections)} detection(s), max FRP {event.max_frp:.1f} MW, "
                 f"confidence {event.confidence:.2f}", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def event_evidence(event: FireEvent, zones: FireZones | None, source: str,
                   sha256: str) -> list[EvidenceRef]:
    slug = event.event_id.replace("@", "_").replace(",", "_")
    info = json.dumps({"source": source, "sha256": sha256}, sort_keys=True).encode()
    return [_ref("image/png", f"{slug}_map.png", event_png(event, zones)),
            _ref("text/csv", f"{slug}_detections.csv", detection_table(event)),
            _ref("application/json", f"{slug}_source.json", info)]


def event_clue(event: FireEvent, *, source: str, sha256: str,
               evidence: Sequence[EvidenceRef] = (), params: dict | None = None) -> Clue:
    """The clue of an unmasked event: modality ``satellite``, kind straw_burning/open_fire;
    the location is the event's centre, so its site is the zone or grid cell that a camera
    or station at the same place maps to (fusion by site, ``streams.clues``)."""
    return Clue(
        modality="satellite", kind=event.kind, rule=f"firms/{event.kind}",
        subject=event.event_id, state="open", start=event.start, time=event.end,
        confidence=event.confidence,
        location={"type": "Point", "coordinates": [event.lon, event.lat]},
        metrics={"detections": len(event.detections), "max_frp": round(event.max_frp, 2),
                 "zones": event.zones, "source": source, "source_sha256": sha256,
                 "points": [[d.lon, d.lat, round(d.frp, 2)] for d in event.detections],
                 "satellites": sorted({f"{d.instrument}/{d.satellite}"
                                       for d in event.detections})},
        summary=(f"{event.kind}: {len(event.detections)} FIRMS detection(s), "
                 f"max FRP {event.max_frp:.1f} MW"),
        detector=DETECTOR, detector_version=VERSION, params=params or {},
        evidence=list(evidence))
