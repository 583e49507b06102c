"""The app under gunicorn on loopback, as the HTTP benchmarks run it: the shipped gunicorn.conf.py.

Its settings are the production ones (gthread, 2 workers x 8 threads, keep-alive 5 s, the access
log) with one change on the command line: no max_requests recycling. A run sends over a thousand
requests to one worker (the deep-page case alone), so a recycled worker would put its restart into
a timing and make the memory row measure a fresh worker instead of one after all the load.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from common import PYTHON, ROOT, Client, flask_env

CONFIG = ROOT / "gunicorn.conf.py"
WORKERS, THREADS = 2, 8
OVERRIDES = ("--max-requests", "0")
GUNICORN_SETUP = (f"gunicorn with `gunicorn.conf.py` ({WORKERS} gthread workers x {THREADS} "
                  "threads; max_requests off, so no worker restarts mid-run)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """`with Gunicorn(database, images, **env) as server:` -> server.port, server.worker_pids()."""

    def __init__(self, database: Path, images: Path, **env: str):
        self.port = free_port()
        # gunicorn.conf.py's own settings, set (even empty) so that a developer's .env cannot
        # change them.
        self.env = flask_env(database, IMAGES_DIR=str(images),
                             GUNICORN_BIND=f"127.0.0.1:{self.port}", BIND="",
                             WEB_CONCURRENCY=str(WORKERS), GUNICORN_THREADS=str(THREADS),
                             GUNICORN_CMD_ARGS="", GUNICORN_LOG_LEVEL="", **env)
        self.process: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()

    def __enter__(self) -> Gunicorn:
        command = [PYTHON, "-m", "gunicorn", "-c", str(CONFIG), *OVERRIDES]
        self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.output()}")
            try:
                client = Client("127.0.0.1", self.port)
                status, *_ = client.request("GET", "/health")
                client.close()
                if status == 200 and len(self.worker_pids()) == WORKERS:
                    self.warm_up()
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"gunicorn did not start:\n{self.output()}")

    def warm_up(self) -> None:
        """A few requests so that both workers have imported and connected."""
        clients = [Client("127.0.0.1", self.port) for _ in range(4)]
        for _ in range(5):
            for client in clients:
                client.request("GET", "/api/images?limit=1")
        for client in clients:
            client.close()

    def client(self) -> Client:
        return Client("127.0.0.1", self.port)

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def peak_rss_mb(self) -> list[float]:
        """Each worker's peak resident set (VmHWM), in MB."""
        peaks = []
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return peaks

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def memory_row(server: Gunicorn) -> dict:
    """The peak resident memory of the hungrier worker, as a result row."""
    peaks = server.peak_rss_mb()
    return {"what": "peak RSS of one gunicorn worker after the load",
            "other": "workers: " + ", ".join(f"{mb:.0f} MB" for mb in peaks),
            "target": "< 150 MB", "ok": bool(peaks) and max(peaks) < 150}
