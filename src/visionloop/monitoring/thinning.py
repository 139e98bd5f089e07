"""Thin a window of consecutive frames to frames that are close to independent, so that the
drift tests' p-values mean what they say.

Evidently's tests (Kolmogorov-Smirnov, chi-square) assume independent rows. A camera's
consecutive frames are not: on the synthetic line a part stays in view for ~146 frames, and the
frame features' autocorrelation falls below 0.1 only after ~90-170 frames (the steps
``benchmarks/drift.py --frames consecutive`` reports). A window of 500
consecutive nominal frames then holds ~6 independent samples; tested as 500, it "drifts" on
every feature against any reference (measured in ``benchmarks/drift.py --frames consecutive``).

A window is thinned by its own decorrelation lag: the smallest lag at which the
autocorrelation of every numerical feature is at most ``ACF_CUTOFF`` (each feature's series in
the window's order). The lag is measured per window, so a fast line, a slow one and a set of
independent images (lag 1) each get what they need; it is capped so that at least ``keep``
frames remain (a window whose features step up at a drift has long autocorrelation too, and
must still be tested).

That cap keeps a short window testable but not independent: 250 consecutive frames thinned to
30 still hold ~2 independent samples, and tested as 30 they "drift". So a check first counts a
window's independent frames (``effective_frames``: its length over its decorrelation lag) and,
under ``MIN_EFFECTIVE_FRAMES`` in either window, calls itself inconclusive rather than testing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visionloop.monitoring.features import FEATURES, NUMERICAL_FEATURES, FeatureTable

ACF_CUTOFF = 0.1
"""Frames this little correlated count as independent."""
MIN_FRAMES = 30
"""Fewest frames in either window for a check to run, and fewest a window is thinned to."""
MIN_EFFECTIVE_FRAMES = 11
"""Fewest independent frames (``effective_frames``) in either window for a check's verdict to
count: below it nominal windows of consecutive frames gave false "drifted" verdicts in
``benchmarks/drift.py --effective`` (see docs/performance.md)."""


@dataclass(frozen=True, slots=True)
class Thinned:
    """A thinned table and the step it was thinned by (1: every frame kept)."""

    table: FeatureTable
    stride: int


def _first_lag_below(series: np.ndarray, max_lag: int) -> int:
    """The smallest lag in 1..max_lag at which the series' autocorrelation is ≤ ``ACF_CUTOFF``
    (``max_lag`` if none; 1 for a constant series, which carries no order)."""
    x = series - series.mean()
    variance = float(np.dot(x, x))
    if variance <= 0.0 or max_lag <= 1:
        return 1
    # Autocorrelation at every lag at once through the FFT (zero-padded: no wrap-around).
    size = 1 << (2 * len(x) - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 1] / variance
    below = np.nonzero(acf[1:] <= ACF_CUTOFF)[0]
    return int(below[0]) + 1 if len(below) else max_lag


def decorrelation_lag(table: FeatureTable, *, max_lag: int) -> int:
    """The smallest lag (1..``max_lag``) at which every numerical feature's autocorrelation is
    at most ``ACF_CUTOFF``."""
    if len(table) < 3 or max_lag <= 1:
        return 1
    return max(
        _first_lag_below(np.asarray(table.columns[name], dtype=np.float64), max_lag)
        for name in NUMERICAL_FEATURES
    )


def thin(table: FeatureTable, *, keep: int) -> Thinned:
    """``table`` thinned to every ``lag``-th row, ``lag`` = its decorrelation lag, capped so
    that at least ``keep`` rows remain (a table of under ``keep`` rows is kept whole)."""
    max_lag = len(table) // keep if keep > 0 else len(table)
    stride = decorrelation_lag(table, max_lag=max_lag)
    if stride <= 1:
        return Thinned(table=table, stride=1)
    thinned = FeatureTable()
    thinned.columns = {name: table.columns[name][::stride] for name in FEATURES}
    return Thinned(table=thinned, stride=stride)


def effective_frames(table: FeatureTable) -> int:
    """How many close-to-independent frames ``table`` holds: its length over its decorrelation
    lag (uncapped, up to a quarter of its length). The lag is measured on each half of the
    table and the smaller one kept: a step in the features (a drift beginning inside the
    window) lengthens the lag of the half it falls in, not the line's own correlation, which
    the other half still shows. A table of independent frames (a profile) holds all of them."""
    n = len(table)
    if n < 8:
        return n
    half = n // 2
    lags = []
    for part in (slice(0, half), slice(half, n)):
        piece = FeatureTable()
        piece.columns = {name: table.columns[name][part] for name in FEATURES}
        lags.append(decorrelation_lag(piece, max_lag=max(1, half // 2)))
    return n // min(lags)
