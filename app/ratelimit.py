"""The generation rate limit, counted in one place for every worker of a deployment.

Flask-Limiter keeps the counters; by default they live in a small SQLite file in the instance
folder, so several gunicorn workers share them (a per-process counter would multiply the limit).
RATE_LIMIT_STORAGE_URI may name any store the `limits` package knows (redis://, memcached://).
"""

from __future__ import annotations

import sqlite3
import threading
import time

from flask import current_app
from limits.storage import Storage

from .extensions import limiter


class SQLiteStorage(Storage):
    """Fixed-window counters in a SQLite table; each update is one atomic statement."""

    STORAGE_SCHEME = ["sqlite"]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = uri.removeprefix("sqlite:///")  # as SQLAlchemy: four slashes, absolute
        self.local = threading.local()
        self._connection().execute(
            "CREATE TABLE IF NOT EXISTS counters"
            " (key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires REAL NOT NULL)"
        )

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                         check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            self.local.connection = connection
        return connection

    @property
    def base_exceptions(self):
        return sqlite3.Error

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        row = self._connection().execute(
            "INSERT INTO counters (key, count, expires) VALUES (?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET"
            "  count = CASE WHEN expires <= ? THEN excluded.count ELSE count + excluded.count END,"
            "  expires = CASE WHEN expires <= ? THEN excluded.expires ELSE expires END"
            " RETURNING count",
            (key, amount, now + expiry, now, now),
        ).fetchone()
        return row[0]

    def get(self, key: str) -> int:
        row = self._connection().execute(
            "SELECT count FROM counters WHERE key = ? AND expires > ?", (key, time.time())
        ).fetchone()
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._connection().execute(
            "SELECT expires FROM counters WHERE key = ?", (key,)).fetchone()
        return row[0] if row else time.time()

    def check(self) -> bool:
        try:
            self._connection().execute("SELECT 1")
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        return self._connection().execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        self._connection().execute("DELETE FROM counters WHERE key = ?", (key,))


# Generation requests from the form and the API count against one shared limit per address.
generation_limit = limiter.shared_limit(lambda: current_app.config["RATE_LIMIT"],
                                        scope="generation")
