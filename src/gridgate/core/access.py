"""Access: what a person may do to which account. Pure rules, no I/O.

- An ``operator`` runs the exchange and may act on every account.
- An account's ``owner`` and its ``member``s may act only on their own account: list, create and
  revoke its API keys, and read its balance and usage. (Owners and members have the same powers
  in this slice; what only an owner may do — managing the account's people — comes with it.)

A refusal never tells whether the other account (or its key) exists: callers answer it as
``NotFound``, exactly as for something that does not exist.
"""

from __future__ import annotations

from gridgate.errors import NotFound, ValidationFailed
from gridgate.storage.records import UserRecord


def may_act_on(user: UserRecord, account_id: str) -> bool:
    """Whether ``user`` may read and manage the keys, balance and usage of ``account_id``."""
    if user.disabled_us is not None:
        return False
    if user.role == "operator":
        return True
    return user.account_id is not None and user.account_id == account_id


def required_account(user: UserRecord, requested: str | None) -> str:
    """The one account a call is about (an operator must name it with ``account_id``)."""
    account = account_in_scope(user, requested, required=True)
    if account is None:  # unreachable: required
        raise ValidationFailed("account_id: required", param="account_id")
    return account


def account_in_scope(user: UserRecord, requested: str | None, *, required: bool) -> str | None:
    """The account a call is about.

    An account's user acts on their own account (naming it is allowed, naming another is
    ``NotFound``). An operator names one with ``account_id``; without it the call covers every
    account (``None``), or is ``ValidationFailed`` when ``required``.
    """
    if user.role == "operator":
        if requested is None and required:
            raise ValidationFailed(
                "account_id: required for an operator (which account?)", param="account_id"
            )
        return requested
    own = user.account_id
    if own is None or (requested is not None and requested != own):
        raise NotFound(f"no account {requested!r}")
    return own
