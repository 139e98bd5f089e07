"""Failed sign-ins per user name and per client address, counted over the last minute.

Kept in the database, not in process memory, so that every server replica (and worker process)
counts the same failures: an attacker spreading guesses over replicas gains nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from visionloop.server.models import LoginFailure

WINDOW = timedelta(minutes=1)


def keys_for(*, name: str, address: str | None) -> list[str]:
    """The counters a sign-in attempt belongs to: its user name and its client address."""
    keys = [f"user:{name[:190]}"]
    if address:
        keys.append(f"addr:{address[:190]}")
    return keys


def retry_after(session: Session, *, keys: Sequence[str], limit: int, now: datetime) -> int | None:
    """Seconds until one more attempt is allowed, or None when no key has ``limit`` failures
    within the window ending ``now``."""
    waits = []
    for key in keys:
        recent = session.scalars(
            select(LoginFailure.failed_at)
            .where(LoginFailure.key == key, LoginFailure.failed_at > now - WINDOW)
            .order_by(LoginFailure.failed_at.desc())
            .limit(limit)
        ).all()
        if len(recent) >= limit:
            # Allowed again when the limit-th newest failure leaves the window.
            waits.append((recent[limit - 1] + WINDOW - now).total_seconds())
    if not waits:
        return None
    return max(1, math.ceil(max(waits)))


def record_failure(session: Session, *, keys: Sequence[str], now: datetime) -> None:
    """Count a failed attempt under each key, and forget failures older than the window."""
    session.execute(insert(LoginFailure), [{"key": key, "failed_at": now} for key in keys])
    session.execute(delete(LoginFailure).where(LoginFailure.failed_at <= now - WINDOW))


def forget(session: Session, *, key: str) -> None:
    """Clear a key's failures (a person who signs in is no longer guessing)."""
    session.execute(delete(LoginFailure).where(LoginFailure.key == key))
