"""What the server's answers mean to the agent, said in words a person can act on.

A wrong token, a disabled device or a URL that is not a visionloop server are fixed by a person,
not by retrying; the agent keeps buffering meanwhile, and says so plainly at start and in every
failing round instead of "server unreachable".
"""

from __future__ import annotations

import re

import httpx

TOKEN_REJECTED = (
    "the server rejected this device token (401): check --token or rotate it "
    "(visionloop devices rotate NAME)"
)
DEVICE_DISABLED = "this device is disabled on the server (403): visionloop devices enable NAME"


def not_a_server(path: str) -> str:
    """The message for a base URL under which ``path`` does not exist (a 404 from no route)."""
    return (
        f"this is not a visionloop server URL (404 on {path}): pass the base URL, "
        "e.g. http://host:8000"
    )


def detail(resp: httpx.Response) -> str:
    """The ``detail`` of an error answer (or the start of its text), for logs and dead letters."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:2000]
    return str(body)[:2000]


def route_missing(resp: httpx.Response) -> bool:
    """True for a 404 that no visionloop route gave: the framework's own "Not Found", or a
    page that is not JSON at all (another web server at that URL)."""
    if resp.status_code != 404:
        return False
    try:
        body = resp.json()
    except ValueError:
        return True
    return not isinstance(body, dict) or body.get("detail") == "Not Found"


_DISABLED = re.compile(r"device '([^']+)' is disabled")


def credential_problem(resp: httpx.Response) -> str | None:
    """The plain-words reason when the server refused this device's credentials, else None."""
    if resp.status_code == 401:
        return TOKEN_REJECTED
    if resp.status_code == 403:
        said = detail(resp)
        named = _DISABLED.search(said)
        if named is not None:
            return DEVICE_DISABLED.replace("NAME", named.group(1))
        if "disabled" in said:
            return DEVICE_DISABLED
        return f"the server refused this device (403): {said}"
    return None
