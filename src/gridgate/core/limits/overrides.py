"""Setting rate limits on a key, an account or an instrument (the service the CLI calls).

A value is a whole number (0 admits nothing), ``unlimited`` (lifts the default), or ``default``
(removes the override: the config's ``[limits.<scope>]`` value applies again). Subject ``*``
sets the default of every subject of the scope, over the config's. A change reaches every
gateway process through the change feed within ``changes.poll_seconds``.

Only an operator sets limits. An account's people read the limits of their account and its keys;
anyone signed in reads an instrument's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

import msgspec

from gridgate.core.access import Actor, may_act_on, require_operator
from gridgate.core.audit_log import note
from gridgate.core.limits.rules import LimitRules
from gridgate.echo import capped
from gridgate.errors import NotFound, ValidationFailed
from gridgate.settings import LimitsSettings
from gridgate.storage.limiter.port import LIMIT_KINDS, LimitKind, LimitScope
from gridgate.storage.ports.errors import NotFoundInStore
from gridgate.storage.ports.keys import KeyStore
from gridgate.storage.ports.limits import LimitStore
from gridgate.storage.records import UNLIMITED, LimitOverride

FIELDS: dict[LimitKind, Literal["requests_per_minute", "tokens_per_minute", "concurrent"]] = {
    "requests": "requests_per_minute",
    "tokens": "tokens_per_minute",
    "concurrent": "concurrent",
}


MAX_LIMIT = 10**12


def parse_value(text: str, *, param: str) -> int | None:
    """``"default"`` → None (remove), ``"unlimited"`` → UNLIMITED, else a whole number ≥ 0."""
    word = text.strip().lower()
    if word == "default":
        return None
    if word == "unlimited":
        return UNLIMITED
    try:
        value = int(word) if word.isascii() and len(word) <= 20 else -2
    except ValueError:
        value = -2
    if not 0 <= value <= MAX_LIMIT:
        raise ValidationFailed(
            f"{param}: a whole number from 0 to {MAX_LIMIT}, 'unlimited' or 'default' "
            f"(got {text[:40]!r})",
            param=param,
        )
    return value


def describe(value: int | None) -> int | str | None:
    return "unlimited" if value == UNLIMITED else value


class OverrideStore(LimitStore, KeyStore, Protocol):
    """The overrides, and the keys whose owners may read the overrides of a key."""


class LimitOverrides:
    def __init__(
        self,
        store: OverrideStore,
        defaults: LimitsSettings,
        *,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``on_change``: make a change effective in this process at once (the others follow
        the change feed)."""
        self._store = store
        self._defaults = defaults
        self._on_change = on_change

    async def set(
        self,
        actor: Actor,
        scope: LimitScope,
        subject: str,
        changes: Mapping[LimitKind, int | None],
    ) -> dict[str, Any]:
        """Apply ``changes`` (kinds not named keep their override) and report the result."""
        require_operator(actor)
        current = await self._store.get_limits(scope, subject) or LimitOverride(
            scope=scope, subject=subject
        )
        updated = msgspec.structs.replace(
            current, **{FIELDS[kind]: value for kind, value in changes.items()}
        )
        audit = note(
            actor,
            "limits.set",
            **{FIELDS[kind]: describe(value) for kind, value in changes.items()},
        )
        try:
            await self._store.set_limits(updated, audit=audit)
        except NotFoundInStore as exc:
            raise NotFound(f"no {scope} {capped(subject)!r}") from exc
        if self._on_change is not None:
            await self._on_change()
        return await self.show(actor, scope, subject)

    async def show(self, actor: Actor, scope: LimitScope, subject: str) -> dict[str, Any]:
        """The subject's overrides and the limits in effect for it."""
        await self._may_read(actor, scope, subject)
        overrides = await self._store.list_limits()
        own = next((o for o in overrides if (o.scope, o.subject) == (scope, subject)), None)
        rules = LimitRules(self._defaults)
        rules.replace(overrides)
        ids = {"key": "-", "account": "-", "instrument": "-"}
        ids[scope] = subject
        effective = {
            limit.kind: limit.limit
            for limit in rules.for_request(ids["key"], ids["account"], ids["instrument"])
            if limit.scope == scope
        }
        return {
            "scope": scope,
            "subject": subject,
            "overrides": {
                FIELDS[k]: describe(getattr(own, FIELDS[k]) if own else None) for k in LIMIT_KINDS
            },
            "effective": {FIELDS[k]: effective.get(k) for k in LIMIT_KINDS},
        }

    async def _may_read(self, actor: Actor, scope: LimitScope, subject: str) -> None:
        if actor.is_operator or scope == "instrument":
            return
        if scope == "account":
            owner = subject
        else:
            key = None if subject == "*" else await self._store.get_key(subject)
            owner = "" if key is None else key.account_id
        if subject == "*" or not may_act_on(actor, owner):
            raise NotFound(f"no {scope} {capped(subject)!r}")
