"""What a password must be: the rules every path applies (API, dashboard, CLI, sign-in).

A new password needs ``MIN_LENGTH`` to ``MAX_LENGTH`` characters and must not be one of the most
common passwords (``common_passwords.txt``, shipped with the package: 11,611 entries of 8 or more
characters, compared ignoring case), the person's own name, or one character repeated. Sign-in
takes passwords up to the same ``MAX_LENGTH``, so no account can hold a password that cannot
sign in. These are NIST SP 800-63B's rules: length and a blocklist, no composition rules.
"""

from __future__ import annotations

import secrets
from functools import cache
from importlib import resources

from visionloop.errors import InvalidInputError

MIN_LENGTH = 8
MAX_LENGTH = 1024
"""The longest password anywhere: the API, the sign-in form and the CLI all take this many
characters (argon2 hashes any length; the bound keeps a request's hashing cost bounded)."""


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lowercased (read once: ~85 ms, ~1.5 MB in memory)."""
    text = resources.files("visionloop.server").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def password_problem(password: str, *, user_name: str = "") -> str | None:
    """Why ``password`` may not be set (a sentence a user acts on), or None when it may."""
    if len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password may have at most {MAX_LENGTH} characters"
    folded = password.casefold()
    if len(set(folded)) == 1:
        return "a password may not be one character repeated"
    if user_name and folded == user_name.strip().casefold():
        return "a password may not be the user name"
    if folded in common_passwords():
        return "this password is one of the most common ones: choose another"
    return None


def check_new_password(password: str, *, user_name: str = "") -> None:
    """Raise InvalidInputError (422) naming the rule ``password`` breaks, if any."""
    problem = password_problem(password, user_name=user_name)
    if problem is not None:
        raise InvalidInputError(problem)


def new_temporary_password() -> str:
    """A generated password for an admin to pass on (96 random bits, 16 URL-safe characters)."""
    return secrets.token_urlsafe(12)
