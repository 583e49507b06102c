"""The generation rate limit, counted in one place for every worker (and node) of a deployment.

Flask-Limiter keeps the counters; by default they live in a small SQLite file in the instance
folder, so several gunicorn workers share them (a per-process counter would multiply the limit).
RATE_LIMIT_STORAGE_URI may name any store the `limits` package knows: `redis://` for several
nodes. When that store is unreachable, each process counts on its own in memory and logs a
warning, until the store answers again.

Each app gets a Limiter of its own: one module-level Limiter would keep the storage, the switch
and the fallback of whichever app configured it last for every app in the process.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits.storage import Storage

# Timeouts for a networked counter store: a store that hangs must not hold up a request.
NETWORK_STORE_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}


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
            # No sync at every count (a counter lost with a power cut costs nothing).
            connection.execute("PRAGMA synchronous=NORMAL")
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


def generation_limit(view):
    """Marks a view whose requests count against RATE_LIMIT; register() applies it per app."""
    view.generation_limited = True
    return view


def register(app: Flask) -> None:
    """This app's own Limiter, applied to every view marked with @generation_limit."""
    config = app.config
    default_store = f"{SQLiteStorage.STORAGE_SCHEME[0]}:///{Path(app.instance_path) / 'ratelimit.db'}"
    uri = (config.get("RATE_LIMIT_STORAGE_URI") or config.get("RATELIMIT_STORAGE_URI")
           or default_store)
    config["RATELIMIT_STORAGE_URI"] = uri
    if uri.startswith(("redis", "rediss", "memcached", "valkey")):
        for name, value in NETWORK_STORE_OPTIONS.items():
            config.setdefault("RATELIMIT_STORAGE_OPTIONS", {}).setdefault(name, value)
    config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    limiter = Limiter(key_func=get_remote_address, strategy="fixed-window")
    limiter.init_app(app)
    limiter.logger = app.logger  # "falling back to in-memory storage" reaches the app's log
    app.extensions["rate_limiter"] = limiter
    shared = limiter.shared_limit(lambda: current_app.config["RATE_LIMIT"], scope="generation")
    for endpoint, view in list(app.view_functions.items()):
        if getattr(view, "generation_limited", False):
            app.view_functions[endpoint] = shared(view)


def current_limiter() -> Limiter:
    return current_app.extensions["rate_limiter"]


def store_status() -> str | None:
    """"ok" or "error" for a configured counter store (RATE_LIMIT_STORAGE_URI); None by default."""
    if not current_app.config.get("RATE_LIMIT_STORAGE_URI"):
        return None
    try:
        return "ok" if current_limiter().storage.check() else "error"
    except Exception:  # any failure of the store's client means it is unreachable
        logging.getLogger(__name__).warning("rate-limit store check failed", exc_info=True)
        return "error"
