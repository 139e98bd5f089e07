"""The manifest of an exported dataset: every file with its sha256, and the dataset's digest.

The digest is the one ``visionloop train`` tags a model version with (``training.evaluate.
dataset_digest`` uses ``digest_of`` too): sha256 over the class names and, in path order, the
relative path and sha256 of every file under ``images/``, ``labels/`` and ``annotations/``. Not
over ``data.yaml`` (it holds the folder's absolute path) or the manifest itself, so the same
labels on the same images give the same digest wherever the folder lies.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

MANIFEST_NAME = "manifest.json"
DATA_FOLDERS = ("annotations", "images", "labels")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a dataset: path relative to its root (POSIX), sha256 hex, size in bytes."""

    path: str
    sha256: str
    size: int


def file_entry(root: Path, path: Path, data: bytes) -> FileEntry:
    """The entry of ``data`` written at ``path`` under ``root``."""
    return FileEntry(
        path=path.relative_to(root).as_posix(),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


def digest_of(names: object | None, files: Iterable[tuple[str, str]]) -> str:
    """The dataset digest of class ``names`` (as ``data.yaml`` loads them; None when there are
    none) and ``(relative path, sha256)`` pairs of the data files, in any order."""
    digest = hashlib.sha256()
    if names is not None:
        digest.update(json.dumps(names, sort_keys=True, default=str).encode())
    for rel, sha in sorted(files, key=lambda f: PurePosixPath(f[0]).parts):
        digest.update(f"{rel}\0{sha}\n".encode())
    return digest.hexdigest()


def is_data_file(rel: str) -> bool:
    """True for a path the digest covers (under images/, labels/ or annotations/)."""
    parts = PurePosixPath(rel).parts
    return len(parts) > 1 and parts[0] in DATA_FOLDERS and not rel.endswith(".cache")


def write_manifest(
    root: Path,
    *,
    dataset_format: str,
    names: Mapping[int, str],
    entries: Iterable[FileEntry],
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Write ``manifest.json`` under ``root`` listing ``entries`` (sorted by path); return the
    digest. ``extra`` adds keys (counts per split, the export's filter)."""
    files = sorted(entries, key=lambda e: PurePosixPath(e.path).parts)
    digest = digest_of(dict(names), ((e.path, e.sha256) for e in files if is_data_file(e.path)))
    body = {
        "format": dataset_format,
        "digest": digest,
        "classes": [{"id": k, "name": v} for k, v in sorted(names.items())],
        **(extra or {}),
        "files": [{"path": e.path, "sha256": e.sha256, "bytes": e.size} for e in files],
    }
    (root / MANIFEST_NAME).write_text(json.dumps(body, indent=1) + "\n")
    return digest
