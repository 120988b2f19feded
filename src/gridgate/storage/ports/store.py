"""``Store``: every port at once, for the code that wires the process together (``app.py``,
``state.py``, the CLI). A ``core`` class asks for the narrow port it uses instead."""

from __future__ import annotations

from typing import Protocol

from gridgate.storage.ports.accounts import AccountStore
from gridgate.storage.ports.audit import AuditStore
from gridgate.storage.ports.caps import CapStore
from gridgate.storage.ports.catalog import CatalogStore
from gridgate.storage.ports.changes import ChangeStore
from gridgate.storage.ports.idempotency import IdempotencyStore
from gridgate.storage.ports.keys import KeyStore
from gridgate.storage.ports.ledger import LedgerStore
from gridgate.storage.ports.lifecycle import StoreLifecycle
from gridgate.storage.ports.limits import LimitStore
from gridgate.storage.ports.people import PeopleStore
from gridgate.storage.ports.receipts import ReceiptStore
from gridgate.storage.ports.responses import ResponseStore
from gridgate.storage.ports.usage import UsageStore
from gridgate.storage.ports.webhooks import WebhookStore


class Store(
    StoreLifecycle,
    AccountStore,
    KeyStore,
    LedgerStore,
    UsageStore,
    CatalogStore,
    LimitStore,
    ChangeStore,
    PeopleStore,
    AuditStore,
    ResponseStore,
    CapStore,
    ReceiptStore,
    IdempotencyStore,
    WebhookStore,
    Protocol,
):
    """Everything persistent. Implementations are safe to share across tasks of one process and
    across processes on the same database.

    A method that changes something a person may change takes ``audit``: the note is written to
    the audit log in the change's own transaction (about the id of what changed), so no change
    is made without its audit entry, nor the other way round. A call that changes nothing (a
    replayed credit, a second revoke) writes no note.
    """
