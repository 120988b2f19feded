"""The one SQL store: SQLAlchemy Core over SQLite and PostgreSQL, one module per port.

| module | what it holds |
|---|---|
| ``store.py`` | ``SqlStore``: open, close, ping, migrations; composed of the parts below |
| ``base.py`` | ``SqlBase``: the runner wrappers every part uses, error translation, the clock |
| ``accounts.py`` | ``AccountStore``: accounts, credits and adjustments |
| ``keys.py`` | ``KeyStore``: API keys (and the SQLite fast path of ``get_key_by_hash``) |
| ``ledger.py`` | ``LedgerStore``'s hot path: place, settle, release (PostgreSQL's CTEs) |
| ``ledger_upkeep.py`` | the rest of ``LedgerStore``: expiry, renewal, balances, entries, verify |
| ``usage.py`` | ``UsageStore``: usage records, daily sums, offer deliveries |
| ``catalog.py`` | ``CatalogStore``: instruments, suppliers, offers, price history |
| ``limits.py`` | ``LimitStore``: rate-limit overrides |
| ``changes.py`` | ``ChangeStore``: the change feed (and ``_announce``, used by every part) |
| ``people.py`` | ``PeopleStore``: users, sessions, management tokens |
| ``responses.py`` | ``ResponseStore``: stored responses and their items, the expiry sweep |
| ``receipts.py`` | ``ReceiptStore``: usage receipts' pages and sums, lease closings, signing keys |
| ``idempotency.py`` | ``IdempotencyStore``: claims of idempotency keys, their answers, the sweep |
| ``caps.py`` | ``CapStore``: spend caps, and the capped hold's steps the ledger runs |
| ``audit.py`` | ``AuditStore``: the audit log (and ``_note``, used by every part) |

Every operation is a transaction function (plain SQLAlchemy Core over a ``Connection``), written
once for both databases and run in one hop by ``storage/runner.py``. The exception is the hot
path on PostgreSQL (``ledger.py``): hold, settle and release are each ONE statement of
data-modifying CTEs run in autocommit. Driver exceptions become ``StorageError`` in one place,
``base._translate`` (inline on the SQLite fast path of ``keys.py``).
"""

from gridgate.storage.sql.store import SqlStore, open_store

__all__ = ["SqlStore", "open_store"]
