"""What ``visionloop simulate`` reports: the fields every strategy's entry carries."""

from __future__ import annotations

FIELDS = (
    "map50_before_drift",
    "map50_after_drift",
    "map50_final",
    "recovered_fraction",
    "golden_map50_before",
    "golden_map50_after",
    "drifted_test_map50_before",
    "drifted_test_map50_after",
    "labels_used",
    "seconds_drift_to_alarm",
    "alarms_before_drift",
    "seconds_drift_to_retraining",
    "seconds_drift_to_promotion_on_edge",
    "retraining_wall_seconds",
    "timeline",
)
