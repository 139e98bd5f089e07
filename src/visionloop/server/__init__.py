"""The visionloop server: a stateless FastAPI service over SQLite or PostgreSQL and a blob store.

Build it with :func:`visionloop.server.app.create_app`; nothing here connects at import time.
"""
