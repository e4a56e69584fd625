"""When an RTSP ingester says how a camera is: online/offline transitions and heartbeats.

The ingester does not judge signal loss itself (``detectors.video_signal`` does, in the
worker); it only reports what it sees, as ``contract.records.CameraHealth`` records:

* a *transition* when frames stop for ``stall_s`` (offline) or flow again (online);
* a *heartbeat* every ``health_every_s`` while the camera is online and nothing changes;
* while it is offline, a heartbeat every ``offline_every_s`` and one as soon as
  ``signal_loss_s`` has passed since the last frame. The detector reads no clock: these
  heartbeats are what carry time forward for it, so a signal loss is found about
  ``signal_loss_s`` after the last frame even though no frame will ever say so.

Times are the ingester's wall clock (UTC); the stall watch itself runs on the monotonic
clock so that a wall-clock step does not fake an outage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contract.records import CameraHealth
from ingest.rtsp_capture import RtspOptions


@dataclass
class HealthWatch:
    """The health reporting of one camera (only the event loop touches it)."""

    camera: str
    options: RtspOptions
    started: float                  # monotonic: when the camera was started
    online: bool | None = None      # None: still connecting for the first time
    last_sent: float = 0.0          # monotonic time of the newest record
    offline_at: float = 0.0         # monotonic time of the offline transition
    loss_marked: bool = False       # the heartbeat at signal_loss_s went out

    def check(self, now: float, wall: datetime, last_grab: float | None,
              last_grab_time: datetime | None, fps: float,
              detail: str) -> CameraHealth | None:
        """The record to send at monotonic ``now`` / wall ``wall``, if one is due.

        ``last_grab`` and ``last_grab_time`` are when the newest frame was grabbed
        (monotonic and wall clock), ``fps`` the capture rate, ``detail`` the capture
        thread's latest event (why an offline camera is offline, as far as it knows).
        """
        opts = self.options
        alive = last_grab is not None and now - last_grab < opts.stall_s
        if self.online is None and not alive and \
                now - self.started < opts.open_timeout_s + opts.stall_s:
            return None  # still connecting (first open): neither online nor offline yet
        if alive != self.online:
            self.online = alive
            self.loss_marked = False
            self.offline_at = now
            return self._record(now, wall, alive, fps, last_grab_time,
                                "online" if alive else detail or "no frames", transition=True)
        if alive:
            if now - self.last_sent >= opts.health_every_s:
                return self._record(now, wall, True, fps, last_grab_time, "periodic")
            return None
        since = last_grab if last_grab is not None else self.offline_at
        if not self.loss_marked and now - since >= opts.signal_loss_s:
            self.loss_marked = True
            return self._record(now, wall, False, 0.0, last_grab_time, detail or "no frames")
        if now - self.last_sent >= opts.offline_every_s:
            return self._record(now, wall, False, 0.0, last_grab_time, detail or "no frames")
        return None

    def _record(self, now: float, wall: datetime, online: bool, fps: float,
                last_frame: datetime | None, detail: str,
                transition: bool = False) -> CameraHealth:
        self.last_sent = now
        return CameraHealth(camera=self.camera, time=wall, online=online,
                            fps=round(fps, 2) if online else 0.0, last_frame=last_frame,
                            detail=detail[:200], transition=transition,
                            signal_loss_s=self.options.signal_loss_s)
