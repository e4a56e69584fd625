"""The saturation rule of the video latency bench (``bench.video_saturation``)."""

from __future__ import annotations

import os

from bench.video_saturation import (
    Sample,
    Step,
    cpu_seconds,
    found,
    keeps_up,
    next_between,
    paced_cameras,
    saturation,
)

METRICS = """\
# HELP offsite_video_frames_analysed_total frames the camera detectors have analysed
# TYPE offsite_video_frames_analysed_total counter
offsite_video_frames_analysed_total 120.0
# HELP offsite_video_frames_dropped_total frames dropped unanalysed
# TYPE offsite_video_frames_dropped_total counter
offsite_video_frames_dropped_total 3.0
# HELP offsite_video_frame_lag_seconds capture of a frame to the end of its analysis
# TYPE offsite_video_frame_lag_seconds histogram
offsite_video_frame_lag_seconds_bucket{le="+Inf"} 120.0
offsite_video_frame_lag_seconds_count 120.0
offsite_video_frame_lag_seconds_sum 36.0
# HELP offsite_video_lane_backlog_frames frames waiting in the cameras' lane queues
# TYPE offsite_video_lane_backlog_frames gauge
offsite_video_lane_backlog_frames 2.0
# HELP offsite_video_cameras_streaming cameras whose frames reached the worker lately
# TYPE offsite_video_cameras_streaming gauge
offsite_video_cameras_streaming 4.0
"""


def test_a_step_keeps_up_only_with_every_frame_analysed_and_no_growing_lag() -> None:
    assert keeps_up(4, 8.0, 0, 0.3, 0.35)
    assert keeps_up(4, 7.7, 0, 0.3, 0.7)  # 96 % of 8 frames/s, lag within one period
    assert not keeps_up(4, 7.0, 0, 0.3, 0.3)  # fewer frames analysed than delivered
    assert not keeps_up(4, 8.0, 1, 0.3, 0.3)  # a lane queue overflowed
    assert not keeps_up(4, 8.0, 0, 0.3, 1.5)  # the backlog grows
    assert not keeps_up(4, 8.0, 0, None, 0.3)  # nothing analysed in a half


def test_saturation_is_the_last_step_that_kept_up_and_latency_runs_at_half() -> None:
    def step(cameras: int, fps: float) -> Step:
        return Step(cameras, 16.0, fps, 0, 0.3, 0.3, 0)

    steps = [step(1, 2.0), step(2, 4.0), step(4, 8.0), step(8, 11.0), step(12, 24.0)]
    assert saturation(steps) == 4
    assert paced_cameras(saturation(steps)) == 2
    assert saturation([step(1, 1.0)]) == 0 and paced_cameras(0) == 1
    assert paced_cameras(12) == 6 and paced_cameras(3) == 1


def test_a_step_is_read_from_the_workers_metrics_text() -> None:
    first = Sample.parse(METRICS, at=100.0)
    assert (first.analysed, first.dropped, first.lag_count, first.backlog, first.streaming) \
        == (120, 3, 120, 2, 4)
    mid = Sample(108.0, 136.0, 3.0, 40.0, 136.0, 0.0)
    last = Sample(116.0, 152.0, 3.0, 48.0, 152.0, 1.0)
    got = Step.of(1, first, mid, last)
    assert got.analysed_fps == 2.0 and got.dropped == 0 and got.backlog_end == 1
    assert got.lag_first_s == 0.25 and got.lag_last_s == 0.5 and got.keeps_up
    whole = Step.of(1, first, None, last)  # no halves: the mean of the whole window
    assert whole.lag_first_s == whole.lag_last_s == 0.375


def test_the_search_halves_the_gap_after_the_first_step_that_fell_behind() -> None:
    def step(cameras: int, keeps: bool) -> Step:
        return Step(cameras, 16.0, cameras * 2.0 if keeps else cameras * 1.5, 0, 0.3, 0.3, 0)

    steps = [step(1, True), step(2, True), step(4, True), step(8, False)]
    assert next_between(steps) == 6
    steps.append(step(6, False))
    assert saturation(steps) == 4 and next_between(steps) == 5
    steps.append(step(5, True))
    assert saturation(steps) == 5 and next_between(steps) is None
    assert next_between([step(1, True), step(2, True)]) is None  # nothing fell behind
    assert found(steps) and not found([step(1, True), step(2, True)])  # then a lower bound
    # a count that kept up above one that did not is noise, not saturation
    assert saturation([step(1, True), step(2, False), step(4, True)]) == 1


def test_cpu_seconds_reads_this_process() -> None:
    spent = cpu_seconds({"me": os.getpid(), "gone": 2**22 + 1})
    assert set(spent) == {"me", "machine"} and spent["me"] > 0 and spent["machine"] > 0
