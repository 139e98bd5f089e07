"""Drift reports as safe HTML: text a device sent never reaches Evidently's renderer, and each
report names the only scripts it may run.

Evidently writes a report's data as JSON inside a ``<script>`` element without escaping ``<``, so
a class name such as ``</script><img src=x onerror=…>`` would end the script and become markup
(issue 20, finding 1). Here every categorical value is replaced by an alias token
(``ReportNames.alias``) before Evidently sees it, and put back into the rendered HTML as a JSON
string body with ``<``, ``>`` and ``&`` escaped (``restore_names``): no device-sent character can
close the script. The finished report then carries, first in its ``<head>``, a
Content-Security-Policy ``<meta>`` listing the sha256 of each of its inline scripts
(``with_script_policy``); the server copies those hashes into the report's response header
(``server.security_headers``), and a report without that ``<meta>`` (older than this module) runs
no script at all.
"""

from __future__ import annotations

import json
import re
import secrets

from visionloop.csp import inline_script_hashes

SCRIPT_POLICY_META = '<meta http-equiv="Content-Security-Policy" content="{policy}">'
_HEAD = re.compile(r"\A\s*<!DOCTYPE html>\s*<html lang=\"en\">\s*<head>", re.IGNORECASE)
_JSON_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


class ReportNames:
    """Alias tokens for the text of categorical values: ``alias(name)`` is a token of ASCII
    letters and digits, the same for the same name, unique per report (a random nonce keeps a
    token from ever equalling text the report holds by itself)."""

    def __init__(self) -> None:
        self._nonce = secrets.token_hex(4)
        self._tokens: dict[str, str] = {}

    def alias(self, name: str) -> str:
        token = self._tokens.get(name)
        if token is None:
            token = f"vl{self._nonce}n{len(self._tokens):06d}"
            self._tokens[name] = token
        return token

    @property
    def by_token(self) -> dict[str, str]:
        return {token: name for name, token in self._tokens.items()}


def json_string_for_script(text: str) -> str:
    """``text`` as the body of a JSON string (no quotes) safe inside an HTML ``<script>``."""
    body = json.dumps(text, ensure_ascii=True)[1:-1]
    return re.sub("[<>&]", lambda m: _JSON_SCRIPT_ESCAPES[m.group(0)], body)


def restore_names(html: str, names: ReportNames) -> str:
    """Put each aliased name back into Evidently's HTML, escaped for a JSON string in a script
    (the only place Evidently writes data)."""
    by_token = names.by_token
    if not by_token:
        return html
    pattern = re.compile("|".join(re.escape(t) for t in sorted(by_token, key=len, reverse=True)))
    return pattern.sub(lambda m: json_string_for_script(by_token[m.group(0)]), html)


def with_script_policy(html: str) -> str:
    """``html`` (an Evidently report) with a CSP ``<meta>`` first in its ``<head>`` allowing its
    inline scripts by hash and nothing else; ValueError when it is not Evidently's layout."""
    head = _HEAD.match(html)
    if head is None:
        raise ValueError("not an Evidently report: no <!DOCTYPE html><html lang=en><head> start")
    policy = "script-src " + " ".join(inline_script_hashes(html) or ["'none'"])
    meta = SCRIPT_POLICY_META.format(policy=policy)
    return html[: head.end()] + meta + html[head.end() :]


_POLICY_AT_START = re.compile(
    _HEAD.pattern + r'\s*<meta http-equiv="Content-Security-Policy" content="([^"<>]*)">',
    re.IGNORECASE,
)
_HASH_SOURCE = re.compile(r"'sha256-[A-Za-z0-9+/]{43}='")


def report_script_hashes(start: str) -> list[str]:
    """The script hashes a report's own ``<meta>`` allows, read from the report's first bytes;
    empty when it has none (a report written before reports carried one)."""
    found = _POLICY_AT_START.match(start)
    return _HASH_SOURCE.findall(found.group(1)) if found else []
