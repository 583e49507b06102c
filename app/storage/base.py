"""The storage interface: where image bytes live, by key, whatever holds them.

A key is a relative name with `/` between parts (`20260101_120000_7.png`, `thumbs/7.webp`).
Every write is whole or not at all: a reader never sees part of an object.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import BinaryIO, ClassVar


class StorageError(Exception):
    """The backend could not be reached or refused the operation; `detail` is safe to show."""

    status: ClassVar[int] = 503
    code: ClassVar[str] = "storage_error"
    retry_after: int | None = None

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class PendingWrite:
    """Bytes on their way to a key not known yet: held in memory until `finish(key)`.

    A backend that can write ahead and rename (a local disk) returns its own kind, which
    writes at once and only renames in `finish`.
    """

    def __init__(self, backend: Backend, data: bytes, content_type: str):
        self.backend, self.data, self.content_type = backend, data, content_type

    def finish(self, key: str) -> None:
        self.backend.put(key, self.data, self.content_type)

    def abort(self) -> None:
        """Forget the bytes (and remove whatever was written ahead)."""


class Backend(ABC):
    """One place that holds objects by key."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write the object whole, replacing any under that key."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable binary stream of the object; FileNotFoundError when there is none."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; nothing happens when there is none."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys of the complete objects that start with `prefix` (unfinished writes excluded)."""

    @abstractmethod
    def url(self, key: str) -> str:
        """Where a browser fetches the object."""

    @abstractmethod
    def check(self) -> None:
        """Raise StorageError unless the backend can be reached now (one cheap call)."""

    def write_ahead(self, data: bytes, content_type: str) -> PendingWrite:
        """Start writing bytes whose key is not known yet."""
        return PendingWrite(self, data, content_type)

    def leftovers(self, older_than: float = 600) -> list[str]:
        """Keys of writes a killed process never finished (not ones still running)."""
        return []

    @property
    def origin(self) -> str | None:
        """The scheme://host[:port] of `url()` when it is another site than the app's."""
        return None
