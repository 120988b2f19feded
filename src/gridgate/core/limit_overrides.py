"""Setting rate limits on a key, an account or an instrument (the service the CLI calls).

A value is a whole number (0 admits nothing), ``unlimited`` (lifts the default), or ``default``
(removes the override: the config's ``[limits.<scope>]`` value applies again). Subject ``*``
sets the default of every subject of the scope, over the config's. A change reaches every
gateway process through the change feed within ``changes.poll_seconds``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from gridgate.core.limit_rules import LimitRules
from gridgate.core.rate_limits import LIMIT_KINDS, LimitKind, LimitScope
from gridgate.errors import ValidationFailed
from gridgate.settings import LimitsSettings
from gridgate.storage.ports import Store
from gridgate.storage.records import UNLIMITED, LimitOverride

FIELDS: dict[LimitKind, Literal["requests_per_minute", "tokens_per_minute", "concurrent"]] = {
    "requests": "requests_per_minute",
    "tokens": "tokens_per_minute",
    "concurrent": "concurrent",
}


def parse_value(text: str, *, param: str) -> int | None:
    """``"default"`` → None (remove), ``"unlimited"`` → UNLIMITED, else a whole number ≥ 0."""
    word = text.strip().lower()
    if word == "default":
        return None
    if word == "unlimited":
        return UNLIMITED
    try:
        value = int(word)
    except ValueError:
        value = -2
    if value < 0:
        raise ValidationFailed(
            f"{param}: a whole number of 0 or more, 'unlimited' or 'default' (got {text!r})",
            param=param,
        )
    return value


def describe(value: int | None) -> int | str | None:
    return "unlimited" if value == UNLIMITED else value


class LimitOverrides:
    def __init__(self, store: Store, defaults: LimitsSettings) -> None:
        self._store = store
        self._defaults = defaults

    async def set(
        self, scope: LimitScope, subject: str, changes: Mapping[LimitKind, int | None]
    ) -> dict[str, Any]:
        """Apply ``changes`` (kinds not named keep their override) and report the result."""
        current = await self._store.get_limits(scope, subject) or LimitOverride(
            scope=scope, subject=subject
        )
        updated = msgspec.structs.replace(
            current, **{FIELDS[kind]: value for kind, value in changes.items()}
        )
        await self._store.set_limits(updated)
        return await self.show(scope, subject)

    async def show(self, scope: LimitScope, subject: str) -> dict[str, Any]:
        """The subject's overrides and the limits in effect for it."""
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
