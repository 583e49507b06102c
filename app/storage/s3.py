"""Objects in an S3-compatible bucket (AWS, SeaweedFS, MinIO, R2, ...), under an optional prefix.

A PUT is atomic on S3: an object is whole or absent. Each carries its content type and a
year-long immutable Cache-Control (a name is never reused). Browsers get presigned GET URLs
unless a public base URL is configured (the store applies that). Credentials come from the
arguments or boto3's usual chain (environment, shared files, instance role) and are never put
into a message.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .base import Backend, StorageError

CACHE_CONTROL = "public, max-age=31536000, immutable"
# A presigned URL is valid for two hours and handed out again for the first of them: every URL
# answered still works for an hour, and pages repeat the same URLs, so browsers cache them.
# (Signing takes botocore about a millisecond: a page of thumbnails signs each once an hour.)
PRESIGNED_SECONDS = 7200
REUSE_SECONDS = 3600
REMEMBERED_URLS = 20_000
MISSING = {"NoSuchKey", "404", "NotFound"}

log = logging.getLogger(__name__)


class S3Backend(Backend):
    def __init__(self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None,
                 region: str | None = None, access_key: str | None = None,
                 secret_key: str | None = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._settings = dict(endpoint_url=endpoint_url, region=region, access_key=access_key,
                              secret_key=secret_key)
        self._clients: dict[str, tuple[int, object]] = {}
        self._signed: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._signed_lock = threading.Lock()
        self._origin = _origin(self._client("work").generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": self.prefix + "x"}, ExpiresIn=60))

    def _client(self, kind: str):
        """One client per process: `work` retries a little, `probe` (health) answers at once."""
        made = self._clients.get(kind)
        if made is None or made[0] != os.getpid():  # a forked child makes its own connections
            settings = self._settings
            config = Config(
                signature_version="s3v4",
                connect_timeout=2 if kind == "probe" else 5,
                read_timeout=5 if kind == "probe" else 30,
                retries={"mode": "standard", "max_attempts": 1 if kind == "probe" else 3},
                max_pool_connections=16,
                # An endpoint is usually a server on one host name: path-style addressing.
                s3={"addressing_style": "path" if settings["endpoint_url"] else "auto"},
            )
            session = boto3.session.Session(
                aws_access_key_id=settings["access_key"],
                aws_secret_access_key=settings["secret_key"],
                region_name=settings["region"],
            )
            client = session.client("s3", endpoint_url=settings["endpoint_url"], config=config)
            made = self._clients[kind] = (os.getpid(), client)
        return made[1]

    @contextmanager
    def _calling(self, action: str, key: str = ""):
        """Turn boto3's failures into StorageError (or FileNotFoundError), with no secret."""
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code") or "error")
            if code in MISSING and key:
                raise FileNotFoundError(key) from None
            log.warning("S3 %s of %r in bucket %r refused: %s", action, key, self.bucket, code)
            raise StorageError(f"Image storage refused the {action} ({code}).") from None
        except BotoCoreError as exc:
            reason = type(exc).__name__
            log.warning("S3 %s of %r in bucket %r failed: %s", action, key, self.bucket, reason)
            raise StorageError(f"Image storage could not be reached for the {action} "
                               f"({reason}).") from None

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with self._calling("write", key):
            self._client("work").put_object(
                Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType=content_type,
                CacheControl=CACHE_CONTROL,
            )

    def open(self, key: str) -> BinaryIO:
        with self._calling("read", key):
            return self._client("work").get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]

    def delete(self, key: str) -> None:
        with self._calling("delete", key):
            self._client("work").delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def list(self, prefix: str = "") -> Iterator[str]:
        pages = self._client("work").get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix)
        with self._calling("listing"):
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix):]

    def url(self, key: str) -> str:
        now = time.monotonic()
        with self._signed_lock:
            remembered = self._signed.get(key)
            if remembered and remembered[0] > now:
                self._signed.move_to_end(key)
                return remembered[1]
        url = self._client("work").generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.prefix + key},
            ExpiresIn=PRESIGNED_SECONDS)
        with self._signed_lock:
            self._signed[key] = (now + REUSE_SECONDS, url)
            self._signed.move_to_end(key)
            while len(self._signed) > REMEMBERED_URLS:
                self._signed.popitem(last=False)
        return url

    def check(self) -> None:
        with self._calling("check"):
            self._client("probe").head_bucket(Bucket=self.bucket)

    @property
    def origin(self) -> str:
        return self._origin


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
