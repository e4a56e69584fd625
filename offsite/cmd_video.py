"""Subcommands: Video: analyze files offline."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Video: analyze files offline.")


def sample_frames(path: Path, fps: float) -> Iterator[tuple[float, object]]:
    """Yield (seconds from the start, BGR frame) at about ``fps``, on the file's own
    timeline (frame index / file fps), so results do not depend on decoding speed."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise typer.BadParameter(f"cannot open video {path}")
    native = cap.get(cv2.CAP_PROP_FPS) or 25.0
    step = 1.0 / fps if fps > 0 else 0.0
    index, next_at = 0, 0.0
    try:
        while True:
            if not cap.grab():
                break
            position = index / native
            index += 1
            if position + 1e-6 < next_at:
                continue
            ok, frame = cap.retrieve()
            if not ok:
                break
            next_at += step
            while next_at <= position:
                next_at += step
            yield position, frame
    finally:
        cap.release()


@app.command("analyze")
def analyze(
    video: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="video file")],
    config: Annotated[Path | None, typer.Option(
        "--config", exists=True, dir_okay=False,
        help="camera YAML (zones, masks, lines, ...)")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="clues as JSON lines (default stdout)")] = None,
    fps: Annotated[float, typer.Option("--fps", help="analysis rate, frames/s")] = 2.0,
    evidence_dir: Annotated[Path | None, typer.Option(
        "--evidence-dir", help="write snapshots and clips here (else no evidence)")] = None,
    start: Annotated[str, typer.Option(
        "--start", help="wall time of the first frame, ISO 8601 with offset")
    ] = "2024-01-01T00:00:00+00:00",
    camera: Annotated[str | None, typer.Option(
        "--camera", help="camera id (default: config, else the file name)")] = None,
) -> None:
    """Run the video detectors over a file and write clues as JSON lines."""
    from detectors.video import CameraAnalyzer
    from detectors.video_config import CameraConfig

    cfg = CameraConfig.from_yaml(config) if config else CameraConfig(camera_id=video.stem)
    if camera:
        cfg.camera_id = camera
    elif not config:
        cfg.camera_id = video.stem
    cfg.evidence.enabled = evidence_dir is not None
    t0 = datetime.fromisoformat(start)
    if t0.tzinfo is None:
        t0 = t0.replace(tzinfo=UTC)
    if evidence_dir:
        evidence_dir.mkdir(parents=True, exist_ok=True)
    analyzer = CameraAnalyzer(cfg)
    sink = out.open("w", encoding="utf-8") if out else sys.stdout
    count = 0
    try:
        moment = t0
        for position, frame in sample_frames(video, fps):
            moment = t0 + timedelta(seconds=position)
            for clue in analyzer.process(frame, moment):  # type: ignore[arg-type]
                _write(clue, sink, evidence_dir)
                count += 1
        for clue in analyzer.flush(moment):
            _write(clue, sink, evidence_dir)
            count += 1
    finally:
        if out:
            sink.close()
    typer.echo(f"{count} clue records", err=True)


def _write(clue: object, sink: object, evidence_dir: Path | None) -> None:
    """Media go to files; the JSON line keeps name, type and sha256 only."""
    from detectors.clue import Clue

    assert isinstance(clue, Clue)
    for ref in clue.evidence:
        if evidence_dir is not None and ref.content:
            (evidence_dir / ref.name).write_bytes(ref.content)
        ref.content = b""
    record = clue.model_dump(mode="json", exclude={"evidence": {"__all__": {"content"}}})
    record["clue_id"] = clue.clue_id
    sink.write(json.dumps(record, ensure_ascii=False) + "\n")  # type: ignore[attr-defined]
