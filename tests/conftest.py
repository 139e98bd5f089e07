"""Shared pytest set-up: fixtures live in tests/support/, one module per area."""

pytest_plugins = ["support.db", "support.models"]
