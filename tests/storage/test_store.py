"""``SqlStore`` is a ``Store``. The contract of each port has its own module
(``test_accounts.py``, ``test_keys.py``, ``test_ledger.py``, …), run against SQLite and
PostgreSQL (see conftest.py)."""

from __future__ import annotations

from gridgate.storage.ports.store import Store
from gridgate.storage.sql import SqlStore


def test_sql_store_is_a_store() -> None:
    store: Store = SqlStore("sqlite:///:memory:")
    assert isinstance(store, SqlStore)
