"""Content-addressed blob storage behind a small protocol (a local folder now, object storage
later). Keys are the sha256 hex digest of the content."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from visionloop.errors import NotFoundError


class BlobStore(Protocol):
    """Where frame images live. Implementations must make ``put`` atomic and idempotent."""

    def put(self, data: bytes) -> str:
        """Store ``data``; return its key (sha256 hex). Storing the same bytes twice is a no-op."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes under ``key``. Raises NotFoundError when absent."""
        ...

    def exists(self, key: str) -> bool: ...


class LocalBlobStore:
    """Blobs as files ``<root>/<k[:2]>/<k[2:4]>/<k>``, written to a temporary file and renamed so a
    reader never sees a partial blob."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise NotFoundError(f"no blob {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        path = self._path(key)
        if path.exists():
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"no blob {key!r}") from exc

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).exists()
        except NotFoundError:
            return False
