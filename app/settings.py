"""Settings changed at run time, kept in the database so they outlive restarts and hold on every node."""

from __future__ import annotations

from .extensions import db
from .models import Setting


def get_setting(key: str) -> str | None:
    row = db.session.get(Setting, key)
    return row.value if row is not None else None


def set_setting(key: str, value: str) -> None:
    row = db.session.get(Setting, key)
    if row is None:
        db.session.add(Setting(key=key, value=value))
    else:
        row.value = value
    db.session.commit()
