"""Settings changed at run time, kept in the database so they outlive restarts and hold on every node."""

from __future__ import annotations

import sqlalchemy as sa

from .extensions import db
from .models import Setting, utcnow


def get_setting(key: str) -> str | None:
    return db.session.scalar(sa.select(Setting.value).where(Setting.key == key))


def set_setting(key: str, value: str) -> None:
    """Insert or replace, in one statement per try (two nodes may set the same key at once)."""
    table = Setting.__table__
    for _ in range(2):
        updated = db.session.execute(sa.update(table).where(table.c.key == key).values(
            value=value, updated_at=utcnow()))
        if updated.rowcount:
            break
        try:
            db.session.execute(sa.insert(table).values(key=key, value=value, updated_at=utcnow()))
            break
        except sa.exc.IntegrityError:
            db.session.rollback()  # inserted by another request in between: update it
    db.session.commit()
