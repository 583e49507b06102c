"""Run the production pieces for real: gunicorn with gunicorn.conf.py, nginx with deploy/nginx.conf.

Everything lives in a temporary folder and listens on free 127.0.0.1 ports: the database (migrated
with `flask db upgrade`, as a deployment does), the images, the rate-limit counters, the logs,
nginx's pid and temp files, and a throwaway TLS certificate.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.conftest import APP_SETTINGS as SETTINGS_OF_THE_APP
from tests.realparts import SBIN, required_binary

ROOT = Path(__file__).resolve().parent.parent
NGINX_SITE = ROOT / "deploy" / "nginx.conf"

# The settings a developer's shell or .env might hold (the app's, and gunicorn's own); a
# deployment under test sets its own.
APP_SETTINGS = (*SETTINGS_OF_THE_APP, "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_BIND",
                "BIND", "GUNICORN_CMD_ARGS", "GUNICORN_LOG_LEVEL")


def nginx_binary() -> str:
    return required_binary("nginx", "nginx", SBIN)


def openssl_binary() -> str:
    return required_binary("openssl", "openssl")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# What a copy of the project leaves out: what is not code, and what a checkout makes at run time.
NOT_COPIED = {".git", ".venv", "instance", ".env", "__pycache__", ".pytest_cache", ".ruff_cache",
              "test-artifacts", ".data", "tests", "docs"}


def _not_copied(directory: str, names: list[str]) -> set[str]:
    if Path(directory) == ROOT / "static" / "images":
        return {name for name in names if name != ".gitkeep"}  # a developer's own images
    return NOT_COPIED & set(names)


def project_copy(folder: Path) -> Path:
    """The project's code in another folder, with an instance folder of its own."""
    target = Path(folder) / "project"
    shutil.copytree(ROOT, target, ignore=_not_copied)
    return target


class Site:
    """The app's settings for one deployment: its own database, images and counters.

    `root` is the project folder it runs from (this checkout, or a `project_copy`).
    """

    def __init__(self, folder: Path, root: Path = ROOT, **settings: str):
        self.root = Path(root)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.images_dir = self.folder / "images"
        self.database = self.folder / "app.db"
        self.env = {**os.environ, **dict.fromkeys(APP_SETTINGS, "")}
        self.env.update(
            SECRET_KEY="deployment-test-secret",
            DATABASE_URL=f"sqlite:///{self.database}",
            IMAGES_DIR=str(self.images_dir),
            RATE_LIMIT_STORAGE_URI=f"sqlite:///{self.folder / 'ratelimit.db'}",
            RATE_LIMIT="100000 per minute",
            DEFAULT_PROVIDER="offline",
            PYTHONUNBUFFERED="1",
        )
        self.env.update(settings)

    def flask(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`flask --app wsgi ARGS` as an operator runs it, with this deployment's settings."""
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=self.root, env=self.env,
            capture_output=True, text=True, timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"flask {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result

    def migrate(self) -> None:
        self.flask("db", "upgrade")


class Gunicorn:
    """gunicorn -c gunicorn.conf.py, started from another folder, logging to a file."""

    def __init__(self, site: Site, workers: int = 2, threads: int = 8, **settings: str):
        self.site = site
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.log_path = site.folder / f"gunicorn-{self.port}.log"
        self.env = {**site.env, "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                    "WEB_CONCURRENCY": str(workers), "GUNICORN_THREADS": str(threads), **settings}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> Gunicorn:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(self.site.root / "gunicorn.conf.py")],
                cwd=self.site.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(self.port, timeout, self.process)
            self.wait_ready(timeout)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"gunicorn did not start: {exc}\n{self.log()}") from None
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        """Every worker is up and the app answers /health."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {self.process.returncode}")
            booted = len(self.worker_pids()) == self.workers
            with contextlib.suppress(requests.RequestException):
                if booted and requests.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"gunicorn was not ready after {timeout} s")

    def worker_pids(self) -> list[int]:
        return children(self.process.pid) if self.process else []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Stop gunicorn (SIGTERM: graceful) and return its exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # the command name in parentheses may hold spaces: fields follow the last ')'
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)


def pid_connected_to(pids: list[int], remote_port: int) -> int | None:
    """Which of these processes holds a TCP connection to 127.0.0.1:remote_port."""
    inodes: dict[str, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes[target[8:-1]] = pid
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                port = int(fields[2].rsplit(":", 1)[1], 16)
                if port == remote_port and fields[9] in inodes:
                    return inodes[fields[9]]
    return None


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1, named as certbot names its files."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "fullchain.pem", folder / "privkey.pem"
    subprocess.run(
        [openssl_binary(), "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def render_site(text: str, replacements: dict[str, str]) -> str:
    """A deploy/nginx*.conf with its documented example values replaced (each must be there)."""
    for old, new in replacements.items():
        assert old in text, f"the nginx site no longer contains {old!r}"
        text = text.replace(old, new)
    return text


class Nginx:
    """nginx in the foreground with a copy of deploy/nginx.conf, included as sites-enabled is."""

    def __init__(self, folder: Path, upstream: str | None = None, images_dir: Path | None = None,
                 sites: dict[str, str] | None = None, site: Path = NGINX_SITE,
                 replacements: dict[str, str] | None = None):
        """deploy/nginx.conf in front of `upstream` (serving `images_dir`), or another site file
        with its example values (upstream addresses, ...) replaced by `replacements`; `sites`
        are more files beside it."""
        self.binary = nginx_binary()
        self.folder = Path(folder)
        self.http_port, self.https_port = free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.https_port}"
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.cert, key = self_signed_certificate(self.folder / "tls")
        values = {
            "listen 80;": f"listen 127.0.0.1:{self.http_port};",
            "listen 443 ssl;": f"listen 127.0.0.1:{self.https_port} ssl;",
        }
        if images_dir is not None:
            values["/srv/imagegen/static/images/"] = f"{images_dir}/"
        values["/srv/imagegen/static/"] = f"{ROOT / 'static'}/"
        values.update(replacements or {"127.0.0.1:8000": upstream})
        values["/etc/letsencrypt/live/imagegen.example.org/"] = f"{key.parent}/"
        site = render_site(Path(site).read_text(), values)
        (self.folder / "sites-enabled").mkdir(parents=True, exist_ok=True)
        (self.folder / "sites-enabled" / "imagegen").write_text(site)
        for name, text in (sites or {}).items():  # more files beside it (deploy/nginx-s3.conf)
            (self.folder / "sites-enabled" / name).write_text(text)
        self.access_log = self.folder / "access.log"
        self.error_log = self.folder / "error.log"
        temp = "\n".join(f"    {name}_temp_path {self.folder / 'temp' / name};"
                         for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # As the stock /etc/nginx/nginx.conf does: the site is included inside http { }.
        main = f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {self.folder / 'nginx.pid'};
error_log {self.error_log} info;
events {{ worker_connections 512; }}
http {{
    {self._mime_types()}
    default_type application/octet-stream;
    sendfile on;
    access_log {self.access_log};
{temp}
    include {self.folder / 'sites-enabled'}/*;
}}
"""
        self.conf = self.folder / "nginx.conf"
        self.conf.write_text(main)
        self.process: subprocess.Popen | None = None

    def _mime_types(self) -> str:
        output = subprocess.run([self.binary, "-V"], capture_output=True, text=True).stderr
        for option in output.split():
            if option.startswith("--conf-path="):
                types = Path(option.split("=", 1)[1]).parent / "mime.types"
                if types.exists():
                    return f"include {types};"
        return ("types { text/html html; text/css css; application/javascript js; "
                "image/png png; image/jpeg jpg; image/webp webp; image/svg+xml svg; }")

    def command(self, *args: str) -> list[str]:
        return [self.binary, "-e", str(self.error_log), "-p", str(self.folder),
                "-c", str(self.conf), *args]

    def test_config(self) -> str:
        result = subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stderr

    def start(self) -> Nginx:
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.folder / "temp" / name).mkdir(parents=True, exist_ok=True)
        self.test_config()
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.https_port, 15, self.process)
            wait_for_port(self.http_port, 15, self.process)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            log = self.error_log.read_text() if self.error_log.exists() else ""
            raise RuntimeError(f"nginx did not start: {exc}\n{log}") from None
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
        session.verify = str(self.cert)
        return session

    def raw(self, method: str, path: str, body: bytes | None = None, headers=None,
            source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
        """One request with the path sent exactly as given (no client-side normalisation)."""
        context = ssl.create_default_context(cafile=str(self.cert))
        connection = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=30,
                                                 context=context, source_address=(source, 0))
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def error_shape(body: bytes) -> dict:
    """The decoded error body, checked to be the contract's {"detail", "error"}."""
    data = json.loads(body)
    assert set(data) == {"detail", "error"}, data
    assert isinstance(data["error"], str) and data["detail"]
    return data
