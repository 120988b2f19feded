"""The storage ports: what ``core`` and the CLI need from a store, and nothing of how.

One port per concern, one module each; a ``core`` class asks only for the port it uses:

| module | port | methods |
|---|---|---|
| ``accounts`` | ``AccountStore`` | create, get, list accounts; ``credit`` |
| ``keys`` | ``KeyStore`` | API keys: create, look up (by hash on every request), rename, revoke, touch |
| ``ledger`` | ``LedgerStore`` | holds (place, settle, release, expire, extend), balances, entries, verify |
| ``usage`` | ``UsageStore`` | usage records: write, list, daily sums, offer deliveries |
| ``catalog`` | ``CatalogStore`` | instruments, suppliers, offers; price history |
| ``limits`` | ``LimitStore`` | rate-limit overrides: set, get, list |
| ``changes`` | ``ChangeStore`` | the change feed: read since, prune |
| ``people`` | ``PeopleStore`` | users, sessions, management tokens |
| ``audit`` | ``AuditStore`` | append to and list the audit log |
| ``responses`` | ``ResponseStore`` | stored responses (Responses API): save, get, chain, items, delete, sweep |
| ``idempotency`` | ``IdempotencyStore`` | ``Idempotency-Key`` claims and their answers: claim, finish, release, sweep |
| ``lifecycle`` | ``StoreLifecycle`` | open, close, ping |
| ``store`` | ``Store`` | all of the above: for wiring (``app.py``, ``state.py``, the CLI) only |

Each port's result types live beside it (``HoldResult`` and ``VerifyReport`` in ``ledger``,
``UsageSpool`` in ``usage``); the errors every port may raise are in ``errors``. The rows that
cross the ports are in ``storage/records.py``.

One SQL implementation (``storage/sql/``) serves SQLite and PostgreSQL, a module per port.
Every method that moves money is a single atomic transaction; none of them lets a balance go
below zero.
"""
