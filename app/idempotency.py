"""Idempotency-Key: a generation request is done once per caller and key, for 24 hours.

The key is claimed by inserting a row (the unique constraint on caller and key decides who wins,
on any worker or node); the answer is stored in that row and replayed to every repeat with the
same body. What is stored: any answer from a request that reached the provider, errors included
(as Stripe does), because the provider may have billed it. What is not: refusals before that
point (validation, an unconfigured provider, a budget, an unexpected failure), which release the
key so that a corrected request may use it again; and a storage failure (503, nothing was kept,
"try again later"), so that the retry it asks for can make the image.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from flask import Response, current_app, request

from .api.errors import error_response, provider_error_response
from .extensions import db
from .models import IdempotencyKey, utcnow
from .params import ValidationFailed
from .providers.base import NotConfigured, ProviderError
from .spending import BudgetExceeded

HEADER = "Idempotency-Key"
VISIBLE = re.compile(r"[\x21-\x7e]{1,255}")
KEPT = timedelta(hours=24)
POLL = 0.2  # seconds between looks at a key another request is running
NOT_EXECUTED = (NotConfigured, BudgetExceeded)  # refused before any provider call


class KeyConflict(Exception):
    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def header_key() -> str | None:
    """The request's Idempotency-Key, checked (1-255 visible ASCII characters), or None."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not VISIBLE.fullmatch(key):
        raise ValidationFailed([{
            "loc": ["header", HEADER],
            "msg": "Idempotency-Key should be 1-255 visible ASCII characters",
            "type": "value_error"}])
    return key


def fingerprint(body) -> str:
    """The same request, whatever its JSON's spacing or key order."""
    text = json.dumps([request.path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _lock_time() -> timedelta:
    return timedelta(seconds=float(current_app.config["GENERATION_TIMEOUT"]) + 30)


def _claim(caller: str, key: str, digest: str) -> IdempotencyKey | None:
    """Take the key (None), or return the row of the request that holds it."""
    now = utcnow()
    table = IdempotencyKey.__table__
    try:
        with db.engine.begin() as connection:
            # Expired keys go first (in the same transaction), so an old key can be used again.
            connection.execute(sa.delete(table).where(table.c.expires_at < now))
            connection.execute(sa.insert(table).values(
                caller=caller, key=key, fingerprint=digest, created_at=now,
                expires_at=now + KEPT, locked_until=now + _lock_time()))
        return None
    except sa.exc.IntegrityError:
        pass
    with db.engine.connect() as connection:
        row = connection.execute(sa.select(table).where(
            table.c.caller == caller, table.c.key == key)).one_or_none()
        if row is None:  # released or expired in between: try again
            return _claim(caller, key, digest)
        if row.fingerprint != digest:
            raise KeyConflict(422, "idempotency_key_reused",
                              "This Idempotency-Key was used with another request body; use a "
                              "new key for a new request.")
        if row.status is None and row.locked_until < now:
            # Its request died (a worker killed mid-generation): take the key over.
            taken = connection.execute(sa.update(table).where(
                table.c.id == row.id, table.c.status.is_(None),
                table.c.locked_until == row.locked_until).values(
                locked_until=now + _lock_time()))
            connection.commit()
            if taken.rowcount == 1:
                return None
        return row


def _finish(caller: str, key: str, response: Response) -> None:
    table = IdempotencyKey.__table__
    with db.engine.begin() as connection:
        connection.execute(sa.update(table).where(
            table.c.caller == caller, table.c.key == key).values(
            status=response.status_code, content_type=response.content_type,
            location=response.headers.get("Location"), body=response.get_data(as_text=True)))


def _release(caller: str, key: str) -> None:
    table = IdempotencyKey.__table__
    with db.engine.begin() as connection:
        connection.execute(sa.delete(table).where(table.c.caller == caller, table.c.key == key))


def _replay(row) -> Response:
    response = current_app.response_class(row.body, status=row.status,
                                          content_type=row.content_type)
    if row.location:
        response.headers["Location"] = row.location
    response.headers["Idempotent-Replayed"] = "true"
    return response


def once(caller: str, key: str, digest: str, run: Callable[[], Response], *,
         store_errors: bool = True, wait: bool = False) -> Response:
    """run() once for this caller and key; repeats get its answer (or a 409 while it runs).

    With `wait` a repeat waits for the first request instead of answering 409 (the form: a
    double click ends on the one image). Without `store_errors` only successes are kept.
    """
    deadline = time.monotonic() + _lock_time().total_seconds()
    while True:
        try:
            row = _claim(caller, key, digest)
        except KeyConflict as conflict:
            return error_response(conflict.status, conflict.detail, conflict.code)
        if row is None:
            break
        if row.status is not None:
            return _replay(row)
        if not wait or time.monotonic() > deadline:
            return error_response(409, "A request with this Idempotency-Key is still running; "
                                  "retry when it has finished to get its answer.",
                                  "request_in_progress", {"Retry-After": "1"})
        time.sleep(POLL)
    try:
        response = run()
    except ProviderError as exc:
        if not store_errors or isinstance(exc, NOT_EXECUTED):
            _release(caller, key)
            raise
        response = provider_error_response(exc)
    except BaseException:
        _release(caller, key)
        raise
    if response.status_code >= 400 and not store_errors:
        _release(caller, key)
    else:
        _finish(caller, key, response)
    return response
