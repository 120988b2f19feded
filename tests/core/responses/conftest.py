"""The service runs over the store's contract fixtures: SQLite and PostgreSQL alike."""

from tests.storage.conftest import backend, db_url, pg_admin_url, store

__all__ = ["backend", "db_url", "pg_admin_url", "store"]
