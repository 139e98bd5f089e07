"""Content-Security-Policy hashes of inline scripts, for every HTML document visionloop serves
(the dashboard's pages, the API docs, drift reports): a policy that allows exactly these
scripts, by their sha256, runs no script injected beside them."""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser

# Script types a browser executes (an empty type is JavaScript); others (JSON data) are inert.
_JS_TYPES = frozenset({"", "text/javascript", "application/javascript", "module"})


class _InlineScripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.bodies: list[str] = []
        self._body: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "script":
            return
        attributes = dict(attrs)
        kind = (attributes.get("type") or "").strip().lower()
        self._body = [] if "src" not in attributes and kind in _JS_TYPES else None

    def handle_data(self, data: str) -> None:
        if self._body is not None:
            self._body.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._body is not None:
            self.bodies.append("".join(self._body))
            self._body = None


def inline_script_hashes(html: str) -> list[str]:
    """The CSP source expressions (``'sha256-…'``) of the executable inline scripts of
    ``html``, in document order, without repeats."""
    parser = _InlineScripts()
    parser.feed(html)
    parser.close()
    hashes: dict[str, None] = {}
    for body in parser.bodies:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[f"'sha256-{digest}'"] = None
    return list(hashes)
