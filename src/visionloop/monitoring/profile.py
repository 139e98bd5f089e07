"""A model version's drift reference profile: the drift features of its validation frames run
through it, computed when the version is registered and stored with it (an MLflow artifact,
``drift/<sha>/drift_profile.json``, named by the version's ``drift_profile_*`` tags).

A drift check compares a device's latest frames with the profile of the model version that
produced them, unless an admin pinned a window of the device's own frames. The profile holds at
most ``PROFILE_FRAMES`` frames: up to 1,000 rows Evidently picks the same tests (K-S,
chi-square) as between two windows of ``VISIONLOOP_DRIFT_WINDOW`` frames, so the alarm share
tuned with ``benchmarks/drift.py`` holds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from visionloop.config import Settings
from visionloop.errors import InvalidInputError, VisionloopError
from visionloop.monitoring.features import FEATURES, BoxRow, FeatureTable, frame_features
from visionloop.monitoring.thinning import MIN_FRAMES

if TYPE_CHECKING:
    from visionloop.training.registry import ModelVersion, Registry

log = logging.getLogger(__name__)

PROFILE_FRAMES = 500
"""Most frames in a profile (see the module doc)."""
PROFILE_FORMAT = 1
BASELINE_SEED = 0
"""The shipped baseline was trained on the synthetic line of this seed (its model card)."""

PROMOTED_AT_TAG = "production.promoted_at"
"""The registry's stamp on a version promoted to production (``Registry.promote``)."""

Progress = Callable[[float, str], None]


def _number(version: str) -> int:
    return int(version) if version.isdigit() else 0


@dataclass(frozen=True, slots=True)
class Profile:
    """A version's reference profile as a check uses it."""

    version: str
    features: FeatureTable
    created_at: datetime
    """When the version was registered: the reference "window" of a check against it."""


def compute_profile(
    onnx_path: Path,
    frames_bgr: Iterable[NDArray[np.uint8]],
    *,
    progress: Progress | None = None,
    total: int | None = None,
) -> FeatureTable:
    """The drift features of ``frames_bgr`` run through the ONNX model at ``onnx_path`` (ONNX
    Runtime, fp32, the detector's default thresholds), the same features a check reads from a
    device's frames: the edge's image statistics and the detections."""
    from visionloop.vision.detector import load_detector
    from visionloop.vision.preprocess import frame_stats

    detector = load_detector(onnx_path, backend="onnxruntime")
    names = detector.info.names
    table = FeatureTable()
    for k, frame in enumerate(frames_bgr):
        h, w = frame.shape[:2]
        stats = frame_stats(frame)
        found = detector.detect(frame)
        boxes = [
            BoxRow(
                names.get(int(c), str(int(c))),
                float(conf),
                float(x1) / w,
                float(y1) / h,
                float(x2) / w,
                float(y2) / h,
            )
            for (x1, y1, x2, y2), conf, c in zip(
                found.xyxy, found.confidence, found.class_id, strict=True
            )
        ]
        table.add(
            frame_features(
                brightness=stats.brightness,
                contrast=stats.contrast,
                sharpness=stats.sharpness,
                boxes=boxes,
            )
        )
        if progress is not None and total and (k + 1) % 50 == 0:
            progress((k + 1) / total, f"drift profile: {k + 1} of {total} frames")
    if len(table) == 0:
        raise InvalidInputError("a drift profile needs at least one frame")
    return table


def dataset_frames(
    dataset: Path, *, split: str = "val", limit: int = PROFILE_FRAMES
) -> tuple[int, Iterator[NDArray[np.uint8]]]:
    """Up to ``limit`` images of a YOLO dataset's ``split`` (evenly spread over it), decoded as
    BGR, with their count. ``InvalidInputError`` when the split is missing or empty."""
    from visionloop.training.evaluate import split_files

    images = split_files(dataset, split).images
    step = max(1, len(images) // limit)
    chosen = images[::step][:limit]
    return len(chosen), _decoded(chosen)


def profile_frames(
    sources: Sequence[tuple[Path, str]], *, limit: int = PROFILE_FRAMES
) -> tuple[int, Iterator[NDArray[np.uint8]]]:
    """Up to ``limit`` images spread evenly over several YOLO datasets' splits (``(dataset,
    split)``; a missing dataset or split is left out), decoded as BGR, with their count: a
    retrained version's profile is its training and validation images plus the golden set, so
    that it holds both the conditions it learned and the nominal ones. ``InvalidInputError``
    when none holds an image."""
    from visionloop.training.evaluate import split_files

    images: list[Path] = []
    for dataset, split in sources:
        try:
            images += split_files(dataset, split).images
        except InvalidInputError as exc:
            log.info("drift profile: %s left out (%s)", f"{dataset} {split}", exc)
    if not images:
        raise InvalidInputError("a drift profile needs at least one image")
    step = max(1, len(images) // limit)
    chosen = images[::step][:limit]
    return len(chosen), _decoded(chosen)


def _decoded(paths: list[Path]) -> Iterator[NDArray[np.uint8]]:
    import cv2

    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("%s: not an image, left out of the drift profile", path)
            continue
        yield image.astype(np.uint8, copy=False)


def synthetic_frames(
    *, count: int = PROFILE_FRAMES, seed: int = BASELINE_SEED, size_wh: tuple[int, int] = (640, 480)
) -> Iterator[NDArray[np.uint8]]:
    """``count`` random nominal frames of the synthetic line (the baseline's training data:
    random rather than consecutive frames, so that they show many parts)."""
    from visionloop.vision.synthetic.line import SyntheticLine
    from visionloop.vision.synthetic.records import LINE_SPAN
    from visionloop.vision.synthetic.schedule import Drift

    line = SyntheticLine(seed=seed, size_wh=size_wh)
    rng = np.random.default_rng([seed, 23])
    nominal = Drift("nominal", 0.0)
    for index in rng.integers(0, LINE_SPAN, size=count):
        yield line.render(int(index), drift=nominal).frame_bgr


def write_profile(table: FeatureTable, path: Path, *, source: str) -> Path:
    """Write ``table`` as a profile JSON file (``source`` says where its frames came from)."""
    path.write_text(
        json.dumps(
            {
                "format": PROFILE_FORMAT,
                "source": source,
                "frames": len(table),
                "features": table.columns,
            }
        )
    )
    return path


def read_profile(path: Path) -> FeatureTable:
    """A profile JSON file as a ``FeatureTable``; ``VisionloopError`` when it is not one."""
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        columns = {name: list(raw["features"][name]) for name in FEATURES}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VisionloopError(f"{path}: not a drift profile ({exc})") from exc
    if len({len(v) for v in columns.values()}) != 1:
        raise VisionloopError(f"{path}: the profile's columns differ in length")
    return FeatureTable(columns=columns)


def profile_version(
    registry: Registry,
    version: str,
    frames_bgr: Iterable[NDArray[np.uint8]],
    *,
    source: str,
    work_dir: Path,
    total: int | None = None,
    progress: Progress | None = None,
) -> int:
    """Compute ``version``'s profile from ``frames_bgr`` and store it with the version; the
    number of frames profiled."""
    table = compute_profile(registry.onnx_path(version), frames_bgr, progress=progress, total=total)
    work_dir.mkdir(parents=True, exist_ok=True)
    path = write_profile(table, work_dir / "drift_profile.json", source=source)
    registry.add_drift_profile(version, path, frames=len(table), source=source)
    log.info("version %s: drift profile of %d frames (%s)", version, len(table), source)
    return len(table)


class RegistryProfiles:
    """Model versions' profiles for the checks of one job, read from the registry once each.

    A local ``sqlite:`` MLflow store that does not exist yet holds no version: then MLflow is
    not even imported (it takes seconds), and every check uses the automatic reference.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._registry: Registry | None = None
        self._found: dict[str, Profile | None] = {}
        self._lineage: dict[str, list[str]] = {}

    def _store_exists(self) -> bool:
        uri = self._settings.mlflow_tracking_uri
        if not uri.startswith("sqlite:"):
            return True
        return Path(uri.removeprefix("sqlite:///")).is_file()

    def __call__(self, version: str) -> Profile | None:
        if version not in self._found:
            self._found[version] = self._load(version)
        return self._found[version]

    def lineage(self, version: str) -> list[str]:
        """The versions promoted to production before ``version`` was (or, never promoted,
        before it was registered), newest first: whose profile a version without one inherits
        (from the versions' ``production.promoted_at`` stamps)."""
        if version not in self._lineage:
            self._lineage[version] = self._load_lineage(version)
        return self._lineage[version]

    def _reg(self) -> Registry:
        if self._registry is None:
            from visionloop.training.registry import Registry

            self._registry = Registry.from_settings(self._settings)
        return self._registry

    def _load_lineage(self, version: str) -> list[str]:
        if not self._store_exists():
            return []
        try:
            return earlier_production(version, self._reg().versions())
        except Exception as exc:  # a registry that cannot answer must not fail the check
            log.info("no version history for model version %s: %s", version, exc)
            return []

    def _load(self, version: str) -> Profile | None:
        if not self._store_exists():
            return None
        try:
            mv = self._reg().get(version)
            path = self._reg().drift_profile_path(version)
            if path is None:
                return None
            return Profile(
                version=mv.version, features=read_profile(path), created_at=mv.created_at
            )
        except Exception as exc:  # a registry that cannot answer must not fail the check
            log.info("no drift profile for model version %s: %s", version, exc)
            return None


def _promoted_at(version: ModelVersion) -> datetime | None:
    stamp = version.tags.get(PROMOTED_AT_TAG)
    try:
        return datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return None


def earlier_production(version: str, versions: Sequence[ModelVersion]) -> list[str]:
    """The versions promoted to production before ``version`` was (or, never promoted, before
    it was registered), newest first: whose profile a version without a usable one inherits
    (from the versions' ``production.promoted_at`` stamps)."""
    own = next((v for v in versions if v.version == version), None)
    if own is None:
        return []
    until = _promoted_at(own) or own.created_at
    earlier = [
        (at, v.version)
        for v in versions
        if v.version != version and (at := _promoted_at(v)) is not None and at <= until
    ]
    earlier.sort(key=lambda e: (e[0], _number(e[1])), reverse=True)
    return [v for _, v in earlier]


def profile_frames_of(version: ModelVersion) -> int:
    """Frames in the version's stored profile (0: none)."""
    raw = version.tags.get("drift_profile_frames", "")
    return int(raw) if raw.isdigit() else 0


def reference_words(version: ModelVersion, versions: Sequence[ModelVersion]) -> str:
    """What the drift checks of devices running ``version`` compare with, in words (unless an
    admin pinned a window of a device): its own profile, an earlier production version's
    (inherited), or each device's first frames with it (see ``monitoring.checks``)."""
    frames = profile_frames_of(version)
    if frames >= MIN_FRAMES:
        source = version.tags.get("drift_profile_source", "")
        return f"its own profile: {frames} frames" + (f" ({source})" if source else "")
    lacking = "no profile" if frames == 0 else f"a profile of only {frames} frames"
    by_version = {v.version: v for v in versions}
    for earlier in earlier_production(version.version, versions):
        if profile_frames_of(by_version[earlier]) >= MIN_FRAMES:
            return f"inherited from version {earlier} ({lacking} of its own)"
    return (
        f"the first frames each device sends with it ({lacking}, and none to inherit; frames "
        "captured during drift alarms left out)"
    )
