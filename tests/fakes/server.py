"""A small threaded HTTP server that the fake provider APIs build on.

A fake subclasses `FakeServer` and implements `handle(request) -> Response | DROP`. The server
listens on 127.0.0.1 on a free port, answers from daemon threads, and records every request it
receives in `.requests` (a snapshot list of `Request`, safe to read from any thread). A fake may
hold an answer until the test calls `release()` (`hold()`), so a test waits on an event, not on
the clock.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import re
import struct
import threading
import time
import traceback
import zlib
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from PIL import Image

# Returned by `handle` to close the connection without sending any response.
DROP = object()

MAX_BODY = 64 * 1024 * 1024


class Headers(dict):
    """Request headers keyed by lower-case name; lookups ignore case."""

    def __init__(self, items=()):
        super().__init__((name.lower(), value) for name, value in items)

    def __getitem__(self, name):
        return super().__getitem__(name.lower())

    def __contains__(self, name):
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name, default=None):
        return super().get(name.lower(), default)


@dataclass
class Request:
    """One request as the fake received it.

    `body` is the parsed body: `{"fields": {...}, "files": [part names]}` for a form (multipart
    or urlencoded), the decoded value for JSON, else the raw bytes. `form`, `files` and `json`
    give the same pieces separately (None when the body is not of that kind).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    raw: bytes = b""
    form: dict[str, str] | None = None
    files: list[str] | None = None
    json: Any = None
    body: Any = None
    received_at: float = field(default_factory=time.monotonic)  # when the body was read

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status, obj, content_type="application/json", headers=None):
        data = json.dumps(obj).encode()
        return cls(status, data, {"Content-Type": content_type, **(headers or {})})


def parse_multipart(content_type: str, raw: bytes) -> tuple[dict[str, str], list[str]]:
    """Split a multipart/form-data body into text fields and the names of file parts."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + raw)
    if not message.is_multipart() or message.defects:
        raise ValueError("malformed multipart body")
    fields: dict[str, str] = {}
    files: list[str] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            raise ValueError("multipart part without a name")
        name = collapse_rfc2231_value(name)
        if part.get_filename() is not None:
            files.append(name)
        else:
            fields[name] = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    return fields, files


def _parse_body(request: Request) -> None:
    kind = request.content_type
    if kind == "multipart/form-data":
        try:
            request.form, request.files = parse_multipart(
                request.headers["content-type"], request.raw
            )
        except ValueError:
            pass
    elif kind == "application/x-www-form-urlencoded":
        request.form = dict(
            parse_qsl(request.raw.decode("utf-8", "replace"), keep_blank_values=True)
        )
        request.files = []
    elif kind == "application/json" or kind.endswith("+json"):
        try:
            request.json = json.loads(request.raw)
        except ValueError:
            pass
    if request.form is not None:
        request.body = {"fields": request.form, "files": request.files}
    elif request.json is not None:
        request.body = request.json
    else:
        request.body = request.raw


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeProvider/1.0"

    def log_message(self, format, *args):
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True  # the unread rest would spoil the next request
        return self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""

    def _serve(self):
        fake: FakeServer = self.server.fake
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=Headers(self.headers.items()),
            raw=self._read_body(),
        )
        _parse_body(request)
        fake._record(request)
        try:
            response = fake.handle(request)
        except Exception:  # a bug in the fake: answer it plainly rather than hang the client
            response = Response(
                500, traceback.format_exc().encode(), {"Content-Type": "text/plain"}
            )
        if response is DROP:
            self.close_connection = True
            return
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a timeout)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class FakeServer:
    """Base of the fakes: `start()` (returns self), `stop()`, `.url`, `.requests`, `reset()`.

    Also usable as a context manager. Subclasses implement `handle(request)`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._address = (host, port)
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self._released = threading.Event()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake server is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[Request]:
        """A snapshot of every request received since start or the last reset()."""
        with self._lock:
            return list(self._requests)

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def start(self):
        self.stopping.clear()
        self._httpd = ThreadingHTTPServer(self._address, _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
        self._released.clear()

    def release(self) -> None:
        """Let every held answer (the `hold` fault) go, and any later one, until reset()."""
        self._released.set()

    def hold(self, at_most: float = 120) -> None:
        """Wait for release() (or the server stopping; at most `at_most` seconds, so a test that
        never releases cannot hang the suite)."""
        deadline = time.monotonic() + at_most
        while not self._released.is_set() and not self.stopping.is_set():
            if time.monotonic() >= deadline:
                return
            self._released.wait(0.05)

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early when the server stops."""
        if seconds > 0:
            self.stopping.wait(seconds)

    def handle(self, request: Request):
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --- fault markers -------------------------------------------------------------------------

_FAULT = re.compile(r"\[fault:([a-z0-9-]+)(?:=([^\]]*))?\]")


def parse_faults(text: str, known: set[str]) -> tuple[dict[str, str | None], list[str]]:
    """Find `[fault:name]` / `[fault:name=value]` markers; return them and the unknown ones."""
    faults: dict[str, str | None] = {}
    unknown = []
    for name, value in _FAULT.findall(text or ""):
        if name not in known or (name == "slow" and not _is_seconds(value)):
            unknown.append(f"[fault:{name}{'=' + value if value else ''}]")
        faults[name] = value or None
    return faults, unknown


def _is_seconds(value: str) -> bool:
    return re.fullmatch(r"\d+(\.\d+)?", value or "") is not None


# --- images --------------------------------------------------------------------------------

MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


@functools.lru_cache(maxsize=64)
def render_image(width: int, height: int, seed: int, fmt: str = "png", grey: bool = False) -> bytes:
    """A solid image of the exact size, coloured by the seed (cheap and deterministic)."""
    colour = (
        (128, 128, 128)
        if grey
        else tuple((seed * 2654435761 >> shift) & 0xFF for shift in (0, 8, 16))
    )
    out = io.BytesIO()
    options = {"compress_level": 1} if fmt == "png" else {"quality": 80}
    Image.new("RGB", (width, height), colour).save(out, PIL_FORMAT[fmt], **options)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def bomb_png(side: int = 60000) -> bytes:
    """A small well-formed PNG whose header claims side x side pixels (only a few rows of data)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * side) * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


GARBAGE = b"<html><body>upstream proxy error: this is not an image</body></html>\n"


def corrupt(data: bytes, faults: dict) -> bytes:
    """Apply the output faults (garbage, truncated, bomb) to an encoded image."""
    if "garbage" in faults:
        return GARBAGE
    if "truncated" in faults:
        return data[: len(data) // 2]
    if "bomb" in faults:
        return bomb_png()
    return data


def serve_from_command_line(make, description: str, secret: str, default: str,
                            argv=None) -> None:
    """Run one fake until Ctrl-C: `make(secret, host, port)` builds it; its URL is printed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(f"--{secret}", default=default, help="the accepted credential")
    args = parser.parse_args(argv)
    fake = make(getattr(args, secret), args.host, args.port).start()
    print(fake.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
