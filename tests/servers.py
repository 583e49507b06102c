"""Real PostgreSQL and Redis servers for the tests, each in a temporary folder on a free port.

PostgreSQL refuses to run as root: as root, initdb and pg_ctl run as the `postgres` user
(`runuser -u postgres --`) in a folder that user owns. Both servers are stopped, and their folders
removed, when the test session ends.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.deploy import free_port, wait_for_port
from tests.realparts import require

POSTGRES_BINARIES = "/usr/lib/postgresql/*/bin"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian's layout), or None."""
    found = sorted(glob.glob(POSTGRES_BINARIES), key=lambda p: int(Path(p).parent.name))
    return Path(found[-1]) if found else None


class PostgresServer:
    """initdb + pg_ctl on 127.0.0.1:<free port>, trust authentication for the `postgres` role."""

    def __init__(self, folder: Path | None = None, settings: str = ""):
        """A new cluster in a temporary folder, or the one kept in `folder` (made if missing)."""
        bindir = postgres_bin()
        require(bindir is not None and (bindir / "initdb").exists(),
                "PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.as_owner: list[str] = []
        owner = None
        if os.geteuid() == 0:
            require(shutil.which("runuser") is not None, "runuser is not installed (util-linux)")
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                require(False, "no `postgres` user to run PostgreSQL as (it refuses root)")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        if folder is None:
            folder = Path(tempfile.mkdtemp(prefix="imagegen-postgres-"))
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        if owner is not None:
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
        self.data = self.folder / "data"
        self.port = free_port()
        self.log = self.folder / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str, timeout: float = 120) -> None:
        result = subprocess.run([*self.as_owner, *command], capture_output=True, text=True,
                                timeout=timeout, cwd=self.folder)
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed:\n{result.stdout}{result.stderr}")

    def start(self) -> PostgresServer:
        if not self.data.exists():
            self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                      "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        # Durability is not what the tests measure: no fsync keeps a shared machine calm.
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   f"-c max_connections=200 {self.settings}")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-o", options, "-w", "-t", "60", "start")
        wait_for_port(self.port, 30)
        return self

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                      "stop", timeout=60)

    def running(self) -> bool:
        import socket

        try:
            socket.create_connection(("127.0.0.1", self.port), 0.5).close()
        except OSError:
            return False
        return True

    def execute(self, *statements: str) -> None:
        """Statements run one by one outside a transaction (CREATE DATABASE needs that)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname="postgres", autocommit=True, connect_timeout=10) as conn:
            for statement in statements:
                conn.execute(statement)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


class RedisServer:
    """redis-server on 127.0.0.1:<free port>, nothing saved to disk."""

    def __init__(self):
        binary = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
        require(binary is not None, "redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.folder = Path(tempfile.mkdtemp(prefix="imagegen-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, 15, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def flush(self) -> None:
        import redis

        redis.Redis.from_url(self.url, socket_timeout=5).flushall()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def wait_until_gone(port: int, timeout: float = 10) -> None:
    """Until nothing accepts connections on the port any more."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
        except OSError:
            return
        time.sleep(0.05)
    raise TimeoutError(f"127.0.0.1:{port} still answers after {timeout} s")
