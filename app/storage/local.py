"""Objects as files under one folder (IMAGES_DIR), served at /static/images/<key>.

A write goes to a temporary file in the folder, is synced, then renamed onto its name: a reader
sees the whole file or none. Temporary names start with `.tmp-`, which `list()` never returns.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .base import Backend, PendingWrite, StorageError

TEMP_PREFIX = ".tmp-"
URL_PREFIX = "/static/images/"


class TempFileWrite(PendingWrite):
    """Written and synced at once under a temporary name; `finish` only renames it."""

    def __init__(self, backend: LocalBackend, data: bytes, content_type: str):
        super().__init__(backend, b"", content_type)
        self.temp = backend.write_temp(data)

    def finish(self, key: str) -> None:
        target = self.backend.path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.temp, target)
        except OSError as exc:
            raise _refused(exc) from exc

    def abort(self) -> None:
        self.temp.unlink(missing_ok=True)


class LocalBackend(Backend):
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"not a storage key: {key!r}")
        return self.root.joinpath(*parts)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        TempFileWrite(self, data, content_type).finish(key)

    def write_ahead(self, data: bytes, content_type: str) -> PendingWrite:
        return TempFileWrite(self, data, content_type)

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise _refused(exc, "delete") from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        if not self.root.is_dir():
            return iter(())
        keys = []
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = [name for name in dirs if not name.startswith(".")]
            base = Path(folder).relative_to(self.root).as_posix()
            for name in names:
                key = name if base == "." else f"{base}/{name}"
                if not name.startswith(".") and key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def url(self, key: str) -> str:
        return URL_PREFIX + key

    def check(self) -> None:
        folder = self.root
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
            raise StorageError("The images folder cannot be written.")

    def leftovers(self, older_than: float = 600) -> list[str]:
        cutoff = time.time() - older_than
        found = []
        for folder in (self.root, self.root / "thumbs"):
            if folder.is_dir():
                found += [
                    path.relative_to(self.root).as_posix()
                    for path in folder.glob(f"{TEMP_PREFIX}*")
                    if path.stat().st_mtime < cutoff
                ]
        return sorted(found)

    def write_temp(self, data: bytes) -> Path:
        """The bytes in a synced temporary file in the folder (same disk as its final name)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.root, prefix=TEMP_PREFIX, suffix=".part")
        except OSError as exc:
            raise _refused(exc) from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(name, 0o644)
        except BaseException as exc:
            Path(name).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _refused(exc) from exc
            raise
        return Path(name)


def _refused(exc: OSError, action: str = "write") -> StorageError:
    return StorageError(f"The images folder refused the {action} ({exc.strerror or 'error'}).")
