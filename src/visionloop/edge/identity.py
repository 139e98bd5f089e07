"""Whose records an outbox holds: the server's URL and a fingerprint of the device token.

Each device keeps its own outbox, in a folder named for the server and the token's fingerprint
(``<data dir>/edge/<server>/<fingerprint>/outbox.db``), and the outbox records its owner at
creation: records written under one token are never uploaded under another, whichever folder a
run points at. The fingerprint is a salted sha256 prefix: it tells tokens apart without being a
value the server stores (the server keeps its own hash of the token).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

FINGERPRINT_CHARS = 16


def token_fingerprint(token: str) -> str:
    """16 hex characters that identify ``token`` (not reversible, not the server's hash)."""
    return hashlib.sha256(b"visionloop-outbox\x00" + token.encode()).hexdigest()[:FINGERPRINT_CHARS]


def server_slug(server: str) -> str:
    """A folder name for a server base URL: ``http://127.0.0.1:8000/`` -> ``127.0.0.1-8000``
    (the scheme and a trailing slash do not make another server; a path prefix does)."""
    text = server.strip()
    parts = urlsplit(text if "://" in text else f"http://{text}")
    raw = "-".join(str(p) for p in (parts.hostname, parts.port, parts.path.strip("/")) if p)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("._") or "server"


@dataclass(frozen=True, slots=True)
class OutboxOwner:
    """The server and the token fingerprint an outbox's records belong to."""

    server: str
    fingerprint: str

    @classmethod
    def of(cls, server: str, token: str) -> OutboxOwner:
        return cls(server=server_slug(server), fingerprint=token_fingerprint(token))

    def folder(self, edge_dir: Path) -> Path:
        """The device's default folder under ``edge_dir`` (its outbox and model cache)."""
        return edge_dir / self.server / self.fingerprint
