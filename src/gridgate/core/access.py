"""Access: who is acting, and what they may do to which account. Pure rules, no I/O.

- An ``operator`` runs the exchange and may do everything: every account, the catalog
  (instruments, suppliers, offers), limits, people and the audit log. The CLI acts as an
  operator (``CLI``): whoever can run it can read the database anyway.
- An account's ``owner`` and its ``member``s act only on their own account: its API keys, its
  balance, usage and limits (to read). An owner also manages the account's people.

A refusal about another account never tells whether it (or its key, or its user) exists:
``NotFound``, exactly as for something that does not exist. A refusal of something only an
operator or an owner may do is ``PermissionDenied`` (403).
"""

from __future__ import annotations

from dataclasses import dataclass

from gridgate.echo import capped
from gridgate.errors import NotFound, PermissionDenied, Unauthorized, ValidationFailed
from gridgate.storage.records import Role, UserRecord


@dataclass(frozen=True, slots=True)
class Actor:
    """The one acting: a signed-in person (their user id), a script acting as its token's user,
    or the CLI."""

    id: str  # a user id, or "cli"; the audit log's actor
    role: Role
    account_id: str | None  # None for an operator

    @classmethod
    def of(cls, user: UserRecord) -> Actor:
        if user.disabled_us is not None:  # authentication refuses them; never act as one
            raise Unauthorized("the user is disabled", code="user_disabled")
        return cls(user.id, user.role, user.account_id)

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


CLI = Actor("cli", "operator", None)


def may_act_on(actor: Actor, account_id: str) -> bool:
    """Whether ``actor`` may read and manage the keys, balance and usage of ``account_id``."""
    if actor.is_operator:
        return True
    return actor.account_id is not None and actor.account_id == account_id


def required_account(actor: Actor, requested: str | None) -> str:
    """The one account a call is about (an operator must name it with ``account_id``)."""
    account = account_in_scope(actor, requested, required=True)
    if account is None:  # unreachable: required
        raise ValidationFailed("account_id: required", param="account_id")
    return account


def account_in_scope(actor: Actor, requested: str | None, *, required: bool) -> str | None:
    """The account a call is about.

    An account's user acts on their own account (naming it is allowed, naming another is
    ``NotFound``). An operator names one with ``account_id``; without it the call covers every
    account (``None``), or is ``ValidationFailed`` when ``required``.
    """
    if actor.is_operator:
        if requested is None and required:
            raise ValidationFailed(
                "account_id: required for an operator (which account?)", param="account_id"
            )
        return requested
    own = actor.account_id
    if own is None or (requested is not None and requested != own):
        raise NotFound(f"no account {capped(requested)!r}")
    return own


def require_operator(actor: Actor) -> None:
    if not actor.is_operator:
        raise PermissionDenied("only an operator of the exchange may do this", code="forbidden")


def require_owner(actor: Actor, account_id: str) -> None:
    """An operator, or the owner of ``account_id`` (another account: ``NotFound``)."""
    if actor.is_operator:
        return
    if actor.account_id != account_id:
        raise NotFound(f"no account {capped(account_id)!r}")
    if actor.role != "owner":
        raise PermissionDenied("only the account's owner may do this", code="forbidden")
