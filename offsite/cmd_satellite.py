"""Subcommands: Satellite: change detection on scene pairs, fire events from FIRMS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True,
                  help="Satellite: change detection on scene pairs, fire events from FIRMS.")


@app.command()
def detect(
    before: Annotated[Path, typer.Argument(exists=True, help="BEFORE scene (GeoTIFF)")],
    after: Annotated[Path, typer.Argument(exists=True, help="AFTER scene; output grid")],
    out: Annotated[Path, typer.Option("--out", help="change polygons, GeoJSON (EPSG:4326)")],
    zones: Annotated[Path | None, typer.Option(
        "--zones", exists=True, help="zones GeoJSON with properties kind/name/id")] = None,
    bands: Annotated[str | None, typer.Option(
        "--bands", help="band map, e.g. red=3,nir=4 (1-based)")] = None,
    mask_out: Annotated[Path | None, typer.Option(
        "--mask-out",
        help="uint8 GeoTIFF on AFTER's grid: 1 changed, 0 unchanged, 255 masked/no-data",
    )] = None,
    evidence_dir: Annotated[Path | None, typer.Option(
        "--evidence-dir", help="write PNG/GeoTIFF evidence here")] = None,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", help="fixed change-score threshold")] = None,
    mmu_ha: Annotated[float, typer.Option("--mmu-ha", help="minimum mapping unit (ha)")] = 0.1,
    qa_kind: Annotated[str, typer.Option("--qa-kind", help="fmask or qa_pixel")] = "fmask",
    workers: Annotated[int, typer.Option("--workers", help="reader threads")] = 2,
    evidence_max: Annotated[int, typer.Option(
        "--evidence-max", help="evidence for at most this many largest polygons")] = 20,
) -> None:
    """Detect changes between two dates and write change polygons as GeoJSON.

    A file that is not a readable GeoTIFF (or whose data is truncated) ends the command
    with exit code 2 and a one-line ``error:`` naming the file and the problem.
    """
    import rasterio
    from rasterio.errors import RasterioError

    def fail(message: str) -> typer.Exit:
        typer.echo(f"error: {' '.join(message.split())}", err=True)
        return typer.Exit(2)

    for scene in (before, after):  # name the bad file before any work starts
        try:
            with rasterio.open(scene):
                pass
        except RasterioError as exc:
            raise fail(f"{scene}: not a readable GeoTIFF ({exc})") from None
    try:
        _detect(before, after, out, zones, bands, mask_out, evidence_dir, threshold, mmu_ha,
                qa_kind, workers, evidence_max)
    except RasterioError as exc:  # e.g. truncated data blocks: GDAL names the file
        causes, cur = [], exc  # rasterio wraps GDAL's message ("see previous exception")
        while cur is not None and len(causes) < 4:
            causes.append(str(cur))
            cur = cur.__cause__ or cur.__context__
        detail = "; ".join(c for c in dict.fromkeys(causes) if c)
        raise fail(f"{before} / {after}: cannot read raster data ({detail})") from None
    except ValueError as exc:  # scenes that do not fit together (bands, grids, --bands)
        raise fail(f"{before} / {after}: {exc}") from None


def _detect(before: Path, after: Path, out: Path, zones: Path | None, bands: str | None,
            mask_out: Path | None, evidence_dir: Path | None, threshold: float | None,
            mmu_ha: float, qa_kind: str, workers: int, evidence_max: int) -> None:
    from detectors.satellite import DetectParams, parse_band_map
    from detectors.satellite_files import detect_files
    from detectors.satellite_meta import scene_date
    from detectors.satellite_vector import to_feature_collection

    params = DetectParams(score_threshold=threshold, mmu_ha=mmu_ha, qa_kind=qa_kind)
    if mask_out is not None:
        mask_out.parent.mkdir(parents=True, exist_ok=True)
    zone_fc = json.loads(zones.read_text()) if zones else None
    result = detect_files(before, after, band_map=parse_band_map(bands) or None,
                          zones=zone_fc, params=params, mask_out=mask_out, workers=workers)
    dates = [scene_date(path) for path in (before, after)]
    fc = to_feature_collection(result.polygons, {
        "before_date": dates[0].text if dates[0] else None,
        "after_date": dates[1].text if dates[1] else None,
        "before": before.name, "after": after.name})
    if evidence_dir is not None:
        from detectors.satellite_evidence import polygon_evidence

        evidence_dir.mkdir(parents=True, exist_ok=True)
        pairs = list(zip(fc["features"], result.polygons, strict=True))[:evidence_max]
        for feat, poly in pairs:
            refs = polygon_evidence(before, after, poly, band_map=parse_band_map(bands) or None,
                                    name=f"change_{feat['id']:04d}", before_label=before.name,
                                    after_label=after.name)
            for ref in refs:
                (evidence_dir / ref.name).write_bytes(ref.content)
            feat["properties"]["evidence"] = [{"name": r.name, "sha256": r.sha256}
                                              for r in refs]
    fc["properties"] = {"threshold": result.stats.threshold, "crs_source": result.crs,
                        "bands": list(result.stats.bands)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fc))
    typer.echo(f"{len(result.polygons)} change polygon(s) -> {out} "
               f"(threshold {result.stats.threshold:.2f})")


@app.command()
def fires(
    files: Annotated[list[Path], typer.Argument(
        exists=True, dir_okay=False, help="FIRMS active-fire CSV(s), MODIS or VIIRS columns")],
    out: Annotated[Path, typer.Option("--out", help="one JSON fire event per line")],
    zones: Annotated[Path | None, typer.Option(
        "--zones", exists=True, help="zones GeoJSON (protected_farmland, forest, "
        "enterprise_site with heat_source: true, jurisdiction)")] = None,
    evidence_dir: Annotated[Path | None, typer.Option(
        "--evidence-dir", help="write each unmasked event's map PNG and detection CSV here")
    ] = None,
) -> None:
    """Fire events from FIRMS detections: duplicates dropped, grouped in space and time,
    persistent heat and heat-source zones masked, kinds from the zones and the harvest
    months (settings ``fire_*``). Every event is a line, masked ones included; without
    ``--zones`` every event is ``open_fire``. A file that is not a FIRMS table ends the
    command with exit code 2; bad rows are reported on stderr and skipped."""
    from collections import Counter

    from contract.settings import get_settings
    from detectors.fire import FireZones, find_events
    from detectors.fire_evidence import event_evidence
    from detectors.fire_firms import FirmsError, parse_firms
    from detectors.fire_params import fire_config

    detections, shas = [], {}
    for path in files:
        try:
            parsed = parse_firms(path.read_bytes())
        except FirmsError as exc:
            typer.echo(f"error: {path}: {exc}", err=True)
            raise typer.Exit(2) from None
        for bad in parsed.bad_rows:
            typer.echo(f"{path}:{bad.line}: skipped: {bad.reason}", err=True)
        detections += parsed.detections
        shas[path.name] = parsed.sha256
    zone_set = None
    if zones is not None:
        data = json.loads(zones.read_text(encoding="utf-8-sig"))
        if data.get("type") != "FeatureCollection":
            typer.echo(f"error: {zones}: not a GeoJSON FeatureCollection", err=True)
            raise typer.Exit(2)
        zone_set = FireZones(data["features"])
    result = find_events(detections, fire_config(get_settings()).params(), zone_set)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for event in result.events:
            fh.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
    if evidence_dir is not None:
        evidence_dir.mkdir(parents=True, exist_ok=True)
        source = ",".join(shas)
        for event in (e for e in result.events if e.masked is None):
            for ref in event_evidence(event, zone_set, source, ",".join(shas.values())):
                (evidence_dir / ref.name).write_bytes(ref.content)
    kinds = Counter(e.kind for e in result.events if e.masked is None)
    masked = Counter(e.masked.split(":")[0] for e in result.events if e.masked)
    typer.echo(f"{result.detections} detection(s), {result.duplicates} duplicate(s) dropped, "
               f"{len(result.events)} event(s): "
               + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
               + f"; masked {sum(masked.values())}"
               + (f" ({', '.join(f'{k} {n}' for k, n in sorted(masked.items()))})"
                  if masked else "") + f" -> {out}")
