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


class VideoFileError(Exception):
    """A video file that cannot be decoded (the message names the file and the problem)."""


def sample_frames(path: Path, fps: float) -> Iterator[tuple[float, object]]:
    """Yield (seconds from the start, BGR frame) at about ``fps``, on the file's own
    timeline (frame index / file fps), so results do not depend on decoding speed.

    Raises :class:`VideoFileError` when the file cannot be opened, and after the last frame
    when decoding stopped well short of the frame count the container declares (a
    truncated or corrupt file: what came before it has been yielded)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VideoFileError(f"{path}: cannot open video (not a video file, or truncated"
                             " or corrupt)")
    declared = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    declared = int(declared) if declared and declared > 0 else 0
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
    if index == 0 or (declared and index < declared * 0.98 - 2):
        raise VideoFileError(f"{path}: truncated or corrupt video: decoded {index} of"
                             f" {declared or '?'} frames")


KINDS = {"occlusion": "tamper.occlusion", "defocus": "tamper.defocus",
         "shift": "tamper.shift"}


@app.command("analyze")
def analyze(
    video: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="video file")],
    config: Annotated[Path | None, typer.Option(
        "--config", exists=True, dir_okay=False,
        help="camera YAML (zones, masks, schedules, lines, thresholds; docs/video-config.md)"
    )] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="clues as JSON lines (default stdout)")] = None,
    fps: Annotated[float, typer.Option("--fps", help="analysis rate, frames/s")] = 2.0,
    evidence_dir: Annotated[Path | None, typer.Option(
        "--evidence-dir", help="write snapshots and clips here (else no evidence)")] = None,
    start: Annotated[str, typer.Option(
        "--start", help="wall time of the first frame, ISO 8601 with offset (schedules)")
    ] = "2024-01-01T00:00:00+00:00",
    camera: Annotated[str | None, typer.Option(
        "--camera", help="camera id (default: config, else the file name)")] = None,
) -> None:
    """Run the video detectors over a file and write one JSON object per clue.

    Keys: kind, start_s, end_s (seconds from the start of the file), zone (or null),
    score, bbox ([x0, y0, x1, y1] pixels of the file's frames, or null), evidence (files
    written: path, media_type, sha256). Without --config: tamper detection plus one
    full-frame motion zone ("all"), active all day.
    """
    from detectors.plugin import create
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
    analyzer = create(cfg, cfg.camera_id)  # the plug-in's camera detector
    assert isinstance(analyzer, CameraAnalyzer)  # fed decoded pixels on the file's timeline
    writer = ClueWriter(t0, evidence_dir)
    sink = out.open("w", encoding="utf-8") if out else sys.stdout
    failure: VideoFileError | None = None
    try:
        moment = t0
        try:
            for position, frame in sample_frames(video, fps):
                moment = t0 + timedelta(seconds=position)
                for record in writer.feed(analyzer.process(frame, moment)):  # type: ignore[arg-type]
                    sink.write(json.dumps(record, ensure_ascii=False) + "\n")
        except VideoFileError as exc:  # clues of the part that decoded are still written
            failure = exc
        for record in writer.feed(analyzer.flush(moment)):
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if out:
            sink.close()
    typer.echo(f"{writer.count} clues", err=True)
    if failure is not None:
        typer.echo(f"error: {failure}", err=True)
        raise typer.Exit(2)


class ClueWriter:
    """Turns clue states (open/update/closed) into one contract record per clue, written
    when the clue closes; media go to files as they come."""

    def __init__(self, t0: datetime, evidence_dir: Path | None) -> None:
        self.t0 = t0
        self.evidence_dir = evidence_dir
        self.files: dict[str, list[dict[str, str | None]]] = {}
        self.count = 0

    def feed(self, clues: list[object]) -> list[dict[str, object]]:
        from contract.clue import Clue

        done = []
        for clue in clues:
            assert isinstance(clue, Clue)
            files = self.files.setdefault(clue.clue_id, [])
            for ref in clue.evidence:
                if self.evidence_dir is not None and ref.content:
                    path = self.evidence_dir / ref.name
                    path.write_bytes(ref.content)
                    files.append({"path": str(path), "media_type": ref.media_type,
                                  "sha256": ref.sha256})
            if clue.state == "closed":
                done.append(self.record(clue, self.files.pop(clue.clue_id)))
        self.count += len(done)
        return done

    def record(self, clue: object, files: list[dict[str, str | None]]) -> dict[str, object]:
        from contract.clue import Clue

        assert isinstance(clue, Clue)
        parts = clue.rule.split("/")
        end = clue.end or clue.time
        return {
            "kind": KINDS.get(clue.kind, clue.kind),
            "start_s": round((clue.start - self.t0).total_seconds(), 2),
            "end_s": round((end - self.t0).total_seconds(), 2),
            "zone": parts[1] if parts[0] == "zone" else None,
            "score": clue.confidence,
            "bbox": clue.metrics.get("bbox"),
            "evidence": files,
            "line": parts[1] if parts[0] == "line" else None,
            "rule": clue.rule,
            "camera": clue.subject,
            "clue_id": clue.clue_id,
            "start": clue.start.isoformat(),
            "end": end.isoformat(),
            "metrics": {k: v for k, v in clue.metrics.items() if k != "bbox"},
        }
