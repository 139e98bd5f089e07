"""Path confinement for dataset readers: every file a dataset names must lie inside its folder.

A dataset is data from elsewhere: its annotations name files (COCO ``file_name``, YOLO split
entries and list files, symbolic links in any layout), and a hostile one names ``../../etc``,
an absolute path, or a link that leads out. Readers pass each such path through ``confine``
before reading it, so the file becomes a ``FileProblem`` of its own and nothing of it is read
or stored.
"""

from __future__ import annotations

from pathlib import Path

from visionloop.errors import InvalidInputError


class OutsideDatasetError(InvalidInputError):
    """A path a dataset names that resolves outside the dataset's folder."""


def dataset_root(path: Path) -> Path:
    """The folder that confines a dataset given as ``path`` (a folder, or a file in it),
    resolved. A file inside ``annotations/`` (COCO's layout) belongs to the folder above."""
    folder = path if path.is_dir() else path.parent
    if not path.is_dir() and folder.name == "annotations":
        folder = folder.parent
    return folder.resolve()


def confine(root: Path, path: Path) -> Path:
    """``path`` resolved (symbolic links followed), or OutsideDatasetError when that is not
    inside ``root`` (itself resolved, see ``dataset_root``)."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise OutsideDatasetError(
            f"refused: {path} lies outside the dataset folder {root} "
            "(every file a dataset names must be inside its folder)"
        )
    return resolved


def is_inside(root: Path, path: Path) -> bool:
    """True when ``path`` resolves inside ``root`` (see ``confine``)."""
    return path.resolve().is_relative_to(root)
