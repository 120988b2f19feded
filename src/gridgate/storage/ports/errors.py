"""What every port may raise: the store's errors, shared by all of them."""

from __future__ import annotations


class StorageError(Exception):
    """A store failed (unreachable, constraint broken unexpectedly). Never shown raw to a client."""


class StoreUnavailable(StorageError):
    """The database cannot be reached right now (refused, dropped or timed-out connections,
    a server shutting down): nothing was written, and the same call may succeed later."""


class NotFoundInStore(StorageError):
    """The named account / key / hold does not exist."""


class Conflict(StorageError):
    """A value that must be unique (a user's email) is already taken."""


class IdempotencyConflict(StorageError):
    """An idempotency key was reused with different parameters."""
