"""One drift comparison of a current window of frame features with a reference window, by
Evidently's ``DataDriftPreset``.

Both windows are first thinned to frames that are close to independent (see
:mod:`visionloop.monitoring.thinning`): consecutive frames of a camera are not, and the tests
assume they are. Evidently then chooses each feature's test from the column's type and the
reference's size (up to 1,000 rows: Kolmogorov-Smirnov or chi-square p-values at 0.05; more:
Wasserstein or Jensen-Shannon distances at 0.1; a large reference is sampled down to 1,000 rows
when the thinned current window is smaller, see ``_sized_for``) and states each verdict as a
test; this module reads the verdicts from those tests and never applies a threshold of its own.
Evidently takes seconds to import: this module imports it on first use, in the worker's job
process only, never in the server.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from visionloop.errors import VisionloopError
from visionloop.monitoring.features import CATEGORICAL_FEATURES, NUMERICAL_FEATURES, FeatureTable
from visionloop.monitoring.report_html import ReportNames, restore_names, with_script_policy
from visionloop.monitoring.thinning import (
    MIN_EFFECTIVE_FRAMES,
    MIN_FRAMES,
    effective_frames,
    thin,
)


@dataclass(frozen=True, slots=True)
class FeatureVerdict:
    """Evidently's test of one feature: its method, score, threshold and whether it drifted."""

    feature: str
    method: str
    score: float
    threshold: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "method": self.method,
            "score": self.score,
            "threshold": self.threshold,
            "drifted": self.drifted,
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """The outcome of ``compare``: per-feature verdicts, the share drifted, the gzipped HTML."""

    features: list[FeatureVerdict]
    share_drifted: float
    drifted: bool
    """Evidently's dataset-level test: share of drifted features ≥ the alarm share."""
    report_html_gz: bytes
    reference_stride: int = 1
    """The reference was thinned to every this-many frames (1: all of them)."""
    window_stride: int = 1
    """The same for the current window."""
    reference_rows: int = 0
    """Frames of the reference the tests compared (after thinning)."""
    window_rows: int = 0
    """Frames of the current window the tests compared (after thinning)."""
    reference_effective: int = 0
    """Independent frames in the reference (``thinning.effective_frames``)."""
    window_effective: int = 0
    """Independent frames in the current window."""
    min_effective: int = MIN_EFFECTIVE_FRAMES
    """Fewest independent frames for the verdict to count."""

    @property
    def drifted_features(self) -> int:
        return sum(v.drifted for v in self.features)

    @property
    def effective_frames(self) -> int:
        """Independent frames in the poorer of the two windows."""
        return min(self.reference_effective, self.window_effective)

    @property
    def inconclusive(self) -> bool:
        """Too few independent frames for the tests to mean anything: whatever they said, the
        check is neither drifted nor clean (see ``thinning.MIN_EFFECTIVE_FRAMES``)."""
        return self.effective_frames < self.min_effective

    @property
    def verdict(self) -> str:
        """``"inconclusive"``, ``"drifted"`` or ``"clean"``."""
        if self.inconclusive:
            return "inconclusive"
        return "drifted" if self.drifted else "clean"

    @property
    def inconclusive_reason(self) -> str | None:
        """Why the check is inconclusive, in words (None when it is not)."""
        if not self.inconclusive:
            return None
        which = "window" if self.window_effective <= self.reference_effective else "reference"
        return (
            f"too few independent frames to judge: ~{self.effective_frames} in the {which} "
            f"(needs {self.min_effective})"
        )


def _frame(table: FeatureTable, names: ReportNames) -> Any:
    """The table as a DataFrame whose categorical values (class names a device sent) are alias
    tokens: Evidently writes them into a script unescaped (see ``report_html``)."""
    import pandas as pd

    return pd.DataFrame(
        {
            name: [names.alias(str(v)) for v in values] if name in CATEGORICAL_FEATURES else values
            for name, values in table.columns.items()
        }
    )


def compare(
    reference: FeatureTable,
    current: FeatureTable,
    *,
    drift_share: float,
    keep: int = MIN_FRAMES,
    min_effective: int = MIN_EFFECTIVE_FRAMES,
) -> Comparison:
    """Evidently's ``DataDriftPreset`` of ``current`` against ``reference``, each thinned by
    its decorrelation lag (to no fewer than ``keep`` frames), with its tests; a check is
    drifted when the share of drifted features is at least ``drift_share``, and inconclusive
    (whatever the tests said) when either window holds under ``min_effective`` independent
    frames. The tests still run then: their report and percentiles show what was seen."""
    if len(reference) == 0 or len(current) == 0:
        raise VisionloopError("a drift comparison needs frames in both windows")
    thinned_reference, thinned_current = thin(reference, keep=keep), thin(current, keep=keep)
    tested_reference = _sized_for(thinned_reference.table, len(thinned_current.table))
    # Evidently's statistics divide by zero on a constant column (every frame without a
    # detection, say) and say so in RuntimeWarnings; its verdict for such a column is "no drift".
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comparison = _compare(tested_reference, thinned_current.table, drift_share=drift_share)
    return dataclasses.replace(
        comparison,
        reference_stride=thinned_reference.stride,
        window_stride=thinned_current.stride,
        reference_rows=len(tested_reference),
        window_rows=len(thinned_current.table),
        reference_effective=effective_frames(reference),
        window_effective=effective_frames(current),
        min_effective=min_effective,
    )


SMALL_SAMPLE = 1000
"""Evidently's size rule: a reference of up to this many rows gets p-value tests (K-S,
chi-square), a larger one distance tests (Wasserstein, Jensen-Shannon at 0.1)."""


def _sized_for(reference: FeatureTable, current_rows: int) -> FeatureTable:
    """``reference``, or a seeded random ``SMALL_SAMPLE`` of its rows when it is larger and the
    current window is not. Evidently picks the tests by the reference's size alone, but a test's
    resolution is the smaller sample's: a distance test of ~50 thinned frames against a large
    profile reads the noise of 50 frames as drift, a p-value test accounts for it."""
    if len(reference) <= SMALL_SAMPLE or current_rows > SMALL_SAMPLE:
        return reference
    rows = np.sort(np.random.default_rng(0).choice(len(reference), SMALL_SAMPLE, replace=False))
    sample = FeatureTable()
    sample.columns = {name: [values[i] for i in rows] for name, values in reference.columns.items()}
    return sample


def _compare(
    reference: FeatureTable,
    current: FeatureTable,
    *,
    drift_share: float,
) -> Comparison:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=list(NUMERICAL_FEATURES), categorical_columns=list(CATEGORICAL_FEATURES)
    )
    report = Report([DataDriftPreset(drift_share=drift_share)], include_tests=True)
    names = ReportNames()
    snapshot = report.run(
        Dataset.from_pandas(_frame(current, names), data_definition=definition),
        Dataset.from_pandas(_frame(reference, names), data_definition=definition),
    )
    verdicts, dataset_drifted = read_verdicts(json.loads(snapshot.json()))
    share = sum(v.drifted for v in verdicts) / len(verdicts) if verdicts else 0.0
    html = with_script_policy(restore_names(snapshot.get_html_str(as_iframe=False), names))
    return Comparison(
        features=verdicts,
        share_drifted=share,
        drifted=dataset_drifted,
        report_html_gz=gzip.compress(html.encode("utf-8"), compresslevel=6, mtime=0),
    )


def read_verdicts(snapshot: dict[str, Any]) -> tuple[list[FeatureVerdict], bool]:
    """Per-feature verdicts and the dataset-level verdict from an Evidently 0.7 snapshot's JSON:
    each ``ValueDrift`` metric gives a column's method, score and threshold, and the test bound
    to it (``FAIL``) says whether it drifted; the ``DriftedColumnsCount`` test says whether the
    share of drifted columns reached the preset's ``drift_share``."""
    tests_by_metric: dict[str, str] = {}
    for test in snapshot.get("tests", []):
        metric_id = test.get("metric_config", {}).get("metric_id")
        if metric_id is not None:
            tests_by_metric[metric_id] = test.get("status", "")
    verdicts: list[FeatureVerdict] = []
    dataset_drifted = False
    for metric in snapshot.get("metrics", []):
        config = metric.get("config", {})
        kind = str(config.get("type", ""))
        status = tests_by_metric.get(metric.get("id", ""))
        if kind.endswith(":ValueDrift"):
            verdicts.append(
                FeatureVerdict(
                    feature=str(config["column"]),
                    method=str(config.get("method", "")),
                    score=float(metric["value"]),
                    threshold=float(config.get("threshold", "nan")),
                    drifted=status == "FAIL",
                )
            )
        elif kind.endswith(":DriftedColumnsCount"):
            dataset_drifted = status == "FAIL"
    if not verdicts:
        raise VisionloopError("Evidently's report held no per-feature drift test")
    return verdicts, dataset_drifted
