"""Drift monitoring: per-frame features, reference windows, Evidently checks, alarms."""
