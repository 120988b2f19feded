"""An account's API keys as operations: list, read, create (the secret shown once), rename and
revoke — authorised (``core/access.py``) and audited, for the management API, the dashboard and
the CLI alike. A key of another account is answered like a key that does not exist.

A revoke is refused on the very next request in this process (``on_revoke`` drops the key from
its key cache) and in every other within ``changes.poll_seconds`` (the change feed). A revoked key
stays revoked: it cannot be made active again (make a new one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gridgate.core.access import Actor, account_in_scope, may_act_on, required_account
from gridgate.core.audit_log import note
from gridgate.core.clock import Clock
from gridgate.core.credentials import mint_key
from gridgate.core.times import parse_expiry
from gridgate.echo import capped
from gridgate.errors import NotFound, ValidationFailed
from gridgate.storage.ports.errors import NotFoundInStore
from gridgate.storage.ports.keys import KeyStore
from gridgate.storage.records import KeyRecord

MAX_KEY_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class NewKey:
    record: KeyRecord
    secret: str  # shown once


def check_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > MAX_KEY_NAME_LENGTH:
        raise ValidationFailed(f"name: must be 1 to {MAX_KEY_NAME_LENGTH} characters", param="name")
    return cleaned


class ApiKeys:
    def __init__(
        self,
        store: KeyStore,
        clock: Clock,
        *,
        on_revoke: Callable[[list[str]], None] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_revoke = on_revoke

    async def list(self, actor: Actor, account_id: str | None = None) -> list[KeyRecord]:
        """The keys of ``account_id`` (an account's user: their own; an operator without one:
        every account's)."""
        return await self._store.list_keys(account_in_scope(actor, account_id, required=False))

    async def get(self, actor: Actor, key_id: str) -> KeyRecord:
        key = await self._store.get_key(key_id)
        if key is None or not may_act_on(actor, key.account_id):
            raise NotFound(f"no key {capped(key_id)!r}")
        return key

    async def create(
        self,
        actor: Actor,
        account_id: str | None,
        name: str,
        *,
        expires_at: str | None = None,
        own_usage_only: bool = False,
    ) -> NewKey:
        """``own_usage_only``: the key reads its own usage receipts only, not its account's."""
        account = required_account(actor, account_id)
        cleaned = check_name(name)
        expires_us = parse_expiry(expires_at, now_us=self._clock.now_us()) if expires_at else None
        minted = mint_key()
        try:
            record = await self._store.create_key(
                account_id=account,
                name=cleaned,
                prefix=minted.prefix,
                secret_hash=minted.secret_hash,
                expires_us=expires_us,
                audit=note(
                    actor,
                    "api_key.create",
                    account_id=account,
                    name=cleaned,
                    own_usage_only=own_usage_only,
                ),
                own_usage_only=own_usage_only,
            )
        except NotFoundInStore as exc:
            raise NotFound(f"no account {capped(account)!r}") from exc
        return NewKey(record, minted.secret)

    async def update(
        self, actor: Actor, key_id: str, *, name: str | None = None, is_active: bool | None = None
    ) -> KeyRecord:
        """Rename, and/or revoke with ``is_active=False`` (the reference API's PUT)."""
        key = await self.get(actor, key_id)
        if is_active is True and not key.active_at(self._clock.now_us()):
            raise ValidationFailed(
                "is_active: a revoked or expired key cannot be made active again; create a new one",
                param="is_active",
            )
        if name is not None:
            cleaned = check_name(name)
            if cleaned != key.name:
                key = await self._store.rename_key(
                    key_id,
                    cleaned,
                    audit=note(actor, "api_key.rename", account_id=key.account_id, name=cleaned),
                )
        if is_active is False:
            key = await self.revoke(actor, key_id)
        return key

    async def revoke(self, actor: Actor, key_id: str) -> KeyRecord:
        key = await self.get(actor, key_id)
        try:
            revoked = await self._store.revoke_key(
                key_id, audit=note(actor, "api_key.revoke", account_id=key.account_id)
            )
        except NotFoundInStore as exc:  # pragma: no cover - keys are never deleted
            raise NotFound(f"no key {capped(key_id)!r}") from exc
        if self._on_revoke is not None:
            self._on_revoke([key_id])
        return revoked
