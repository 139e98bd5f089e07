"""The repository's Markdown links point at files inside the repository that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.readme import repo_files

REPO = Path(__file__).resolve().parents[2]
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_UPWARD = re.compile(r"(?<![\w.])(?:\.\./)+[\w.-]+(?:/[\w.-]+)*")


def _markdown_files() -> list[Path]:
    return [REPO / rel for rel in repo_files(REPO) if rel.suffix == ".md"]


def _inside_repo(path: Path) -> bool:
    return path.resolve().is_relative_to(REPO)


@pytest.mark.parametrize(
    "doc", _markdown_files(), ids=lambda p: str(p.relative_to(REPO)) if isinstance(p, Path) else ""
)
def test_links_stay_inside_the_repository_and_resolve(doc: Path) -> None:
    text = doc.read_text()
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL, or an anchor on the same page
        path = doc.parent / target.split("#")[0]
        if not _inside_repo(path) or not path.exists():
            broken.append(target)
    for target in _UPWARD.findall(text):  # `../x` in prose or code too
        path = doc.parent / target
        if not _inside_repo(path) or not path.exists():
            broken.append(target)
    assert broken == []
