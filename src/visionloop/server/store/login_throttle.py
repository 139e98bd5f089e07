"""Failed sign-ins per user name and per client address, and the waits they impose.

Two counters, built so that nobody can turn them on a bystander:

- **Per user name** (from any address): after ``free`` failures within ``NAME_WINDOW`` each
  further attempt on that name waits 1 s after the last failure, then twice as long after each
  new failure, up to ``max_delay_s``. Only that name waits; a guesser gets a few attempts an
  hour, and the real person, once the guessing stops, waits at most ``max_delay_s``.
- **Per client address** (any names): ``address_limit`` failures within ``ADDRESS_WINDOW``, a
  threshold far above one name's, which only someone trying many names reaches.

A refused attempt (429) is not a failure: it costs no argon2 check and counts nowhere, so an
attack on one name never fills its address's counter, and colleagues behind the same address
(one NAT, or a proxy that is not trusted to pass addresses) sign in as usual.

Kept in the database, not in process memory, so that every server replica (and worker process)
counts the same failures: an attacker spreading guesses over replicas gains nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from visionloop.server.models import LoginFailure

NAME_WINDOW = timedelta(hours=1)
ADDRESS_WINDOW = timedelta(hours=1)
KEY_MAX = 190


@dataclass(frozen=True, slots=True)
class ThrottleKeys:
    """The counters one sign-in attempt belongs to."""

    name: str
    address: str | None

    @classmethod
    def of(cls, *, name: str, address: str | None) -> ThrottleKeys:
        return cls(
            name=f"user:{name[:KEY_MAX]}",
            address=f"addr:{address[:KEY_MAX]}" if address else None,
        )

    def all(self) -> list[str]:
        return [self.name] if self.address is None else [self.name, self.address]


@dataclass(frozen=True, slots=True)
class ThrottleRules:
    """``free`` failures per name before waits begin, the longest wait, and the failures an
    address may have in ``ADDRESS_WINDOW``."""

    free: int
    max_delay_s: int
    address_limit: int


def name_delay_s(failures: int, rules: ThrottleRules) -> float:
    """The wait after the last failure once a name has ``failures`` recent ones: none up to
    ``free``, then 1, 2, 4 ... seconds, at most ``max_delay_s``."""
    if failures < rules.free:
        return 0.0
    return float(min(rules.max_delay_s, 2 ** min(failures - rules.free, 30)))


def retry_after(
    session: Session, *, keys: ThrottleKeys, rules: ThrottleRules, now: datetime
) -> int | None:
    """Seconds until one more attempt is allowed, or None when it is allowed now."""
    waits: list[float] = []
    # Enough of the name's newest failures to reach the longest delay.
    cap = rules.free + max(1, math.ceil(math.log2(rules.max_delay_s))) + 1
    recent = session.scalars(
        select(LoginFailure.failed_at)
        .where(LoginFailure.key == keys.name, LoginFailure.failed_at > now - NAME_WINDOW)
        .order_by(LoginFailure.failed_at.desc())
        .limit(cap)
    ).all()
    if recent:
        waits.append((recent[0] - now).total_seconds() + name_delay_s(len(recent), rules))
    if keys.address is not None:
        limit = rules.address_limit
        from_address = session.scalars(
            select(LoginFailure.failed_at)
            .where(LoginFailure.key == keys.address, LoginFailure.failed_at > now - ADDRESS_WINDOW)
            .order_by(LoginFailure.failed_at.desc())
            .limit(limit)
        ).all()
        if len(from_address) >= limit:
            # Allowed again when the limit-th newest failure leaves the window.
            waits.append((from_address[limit - 1] + ADDRESS_WINDOW - now).total_seconds())
    wait = max(waits, default=0.0)
    if wait <= 0:
        return None
    return max(1, math.ceil(wait))


def record_failure(session: Session, *, keys: ThrottleKeys, now: datetime) -> None:
    """Count a failed attempt under each key, and forget failures older than both windows."""
    session.execute(insert(LoginFailure), [{"key": key, "failed_at": now} for key in keys.all()])
    oldest = now - max(NAME_WINDOW, ADDRESS_WINDOW)
    session.execute(delete(LoginFailure).where(LoginFailure.failed_at <= oldest))


def forget_name(session: Session, *, name: str) -> None:
    """Clear a name's failures (its person signed in, or an admin reset their password)."""
    key = ThrottleKeys.of(name=name, address=None).name
    session.execute(delete(LoginFailure).where(LoginFailure.key == key))
