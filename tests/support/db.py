"""Database, settings and app fixtures (SQLite and PostgreSQL)."""
