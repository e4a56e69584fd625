"""A real local RTSP server fed by ffmpeg, for tests and demos.

``rtsp-server-perl`` (Debian packages ``rtsp-server-perl`` and ``librtsp-server-perl``)
accepts a publisher with ANNOUNCE/RECORD on one port and serves players on another; ffmpeg
publishes a sample file in a loop (``-re -stream_loop -1 -c copy``), so clients read a
live H.264 stream as from an IP camera. The server speaks RTP over UDP only, so clients
must use ``rtsp_transport=udp``.

Both run as child processes on free loopback ports with their logs in a state folder;
``kill()`` and ``start()`` take the stream away and bring it back on the same URL.
A missing binary raises :class:`offsite.services.ServiceError` saying what to install.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from offsite.services import ServiceError, free_port, port_open

PACKAGES = "rtsp-server-perl ffmpeg"


def _require(binary: str) -> str:
    found = shutil.which(binary)
    if not found:
        raise ServiceError(f"'{binary}' not found: install it with `apt-get install {PACKAGES}`"
                           " (scripts/install-system-deps.sh does this).")
    return found


def describe_ok(host: str, port: int, path: str, timeout: float = 1.0) -> bool:
    """True when the server answers DESCRIBE for ``path`` with 200 (a publisher is on)."""
    request = (f"DESCRIBE rtsp://{host}:{port}/{path} RTSP/1.0\r\nCSeq: 1\r\n"
               "Accept: application/sdp\r\n\r\n").encode()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            reply = sock.recv(4096)
    except OSError:
        return False
    return reply.startswith(b"RTSP/1.0 200")


@dataclass
class RtspTestServer:
    """rtsp-server-perl plus an ffmpeg publisher looping ``source`` at ``url``."""

    state_dir: Path
    source: Path
    path: str = "cam1"
    client_port: int = 0
    source_port: int = 0
    rtp_start_port: int = 0
    server: subprocess.Popen | None = None
    publisher: subprocess.Popen | None = None
    logs: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.client_port}/{self.path}"

    def start(self, timeout: float = 20.0) -> RtspTestServer:
        """Start (or restart, on the same ports) the server and the publisher."""
        server_bin, ffmpeg = _require("rtsp-server-perl"), _require("ffmpeg")
        if not self.source.exists():
            raise ServiceError(f"RTSP source video {self.source} does not exist")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.client_port = self.client_port or free_port()
        self.source_port = self.source_port or free_port()
        # RTP/RTCP over UDP from here upwards (two ports per stream and client)
        self.rtp_start_port = self.rtp_start_port or random.randrange(21000, 59000, 2)
        self.server = self._spawn("rtsp-server", [
            server_bin, "--clientport", str(self.client_port), "--serverport",
            str(self.source_port), "--rtp_start_port", str(self.rtp_start_port)])
        self._wait(lambda: port_open(self.client_port) and port_open(self.source_port),
                   "rtsp-server-perl listening", timeout, self.server)
        self.publisher = self._spawn("ffmpeg-publisher", [
            ffmpeg, "-hide_banner", "-loglevel", "warning", "-nostdin", "-re",
            "-stream_loop", "-1", "-i", str(self.source), "-an", "-c", "copy",
            "-f", "rtsp", f"rtsp://127.0.0.1:{self.source_port}/{self.path}"])
        self._wait(lambda: describe_ok("127.0.0.1", self.client_port, self.path),
                   "ffmpeg publishing to rtsp-server-perl", timeout, self.publisher)
        return self

    def kill(self) -> None:
        """Take the stream away at once (SIGKILL), as a camera losing power would."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)
        for fh in self.logs:
            fh.close()
        self.logs.clear()

    def __enter__(self) -> RtspTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _end(self, sig: int) -> None:
        for proc in (self.publisher, self.server):
            if proc is not None and proc.poll() is None:
                proc.send_signal(sig)
        for proc in (self.publisher, self.server):
            if proc is None:
                continue
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.publisher = self.server = None

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        fh = open(self.state_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.logs.append(fh)
        return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=self.state_dir)

    def _wait(self, check: object, what: str, timeout: float, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._end(signal.SIGTERM)
                raise ServiceError(f"{what}: process exited with {proc.returncode}; logs in "
                                   f"{self.state_dir}:\n{self._tail()}")
            if check():  # type: ignore[operator]
                return
            time.sleep(0.1)
        self._end(signal.SIGTERM)
        raise ServiceError(f"{what}: not ready in {timeout:.0f}s; logs:\n{self._tail()}")

    def _tail(self) -> str:
        parts = []
        for log in sorted(self.state_dir.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-10:]
            parts.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(parts)

