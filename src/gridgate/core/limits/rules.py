"""Which rate limits apply to a request: the config's defaults, overridden from the store.

For each scope (the key, its account, the instrument) and each kind (requests per minute,
tokens per minute, requests in flight) the value is, first found: the subject's own override,
the scope's stored default (subject ``"*"``), the config's ``[limits.<scope>]`` default. An
override of ``UNLIMITED`` lifts a default; a scope and kind with no value has no limit.

The overrides are held whole in memory and replaced whole when the change feed says one changed
(``core/change_feed.py``), so the hot path is a dict lookup.
"""

from __future__ import annotations

from collections.abc import Iterable

from gridgate.settings import LimitSettings, LimitsSettings
from gridgate.storage.limiter.port import LIMIT_KINDS, Limit, LimitKind, LimitScope
from gridgate.storage.records import UNLIMITED, LimitOverride

_FIELD: dict[LimitKind, str] = {
    "requests": "requests_per_minute",
    "tokens": "tokens_per_minute",
    "concurrent": "concurrent",
}
MAX_CACHED = 100_000


def _value(source: LimitOverride | LimitSettings | None, kind: LimitKind) -> int | None:
    if source is None:
        return None
    value: int | None = getattr(source, _FIELD[kind])
    return value


class LimitRules:
    def __init__(self, defaults: LimitsSettings) -> None:
        self._defaults: dict[LimitScope, LimitSettings] = {
            "key": defaults.key,
            "account": defaults.account,
            "instrument": defaults.instrument,
        }
        self._overrides: dict[tuple[str, str], LimitOverride] = {}
        self._resolved: dict[tuple[str, str, str], tuple[Limit, ...]] = {}

    def replace(self, overrides: Iterable[LimitOverride]) -> None:
        """Take the store's whole set of overrides (after a change, or on refresh)."""
        self._overrides = {(o.scope, o.subject): o for o in overrides}
        self._resolved = {}

    @property
    def any(self) -> bool:
        """Whether any limit could apply at all (when not, requests skip the limiter)."""
        if self._overrides:
            return True
        return any(
            _value(default, kind) is not None
            for default in self._defaults.values()
            for kind in LIMIT_KINDS
        )

    def for_request(self, key_id: str, account_id: str, instrument_id: str) -> tuple[Limit, ...]:
        """The limits of a request, key's first, then the account's, then the instrument's."""
        memo = (key_id, account_id, instrument_id)
        found = self._resolved.get(memo)
        if found is not None:
            return found
        limits: list[Limit] = []
        subjects: tuple[tuple[LimitScope, str], ...] = (
            ("key", key_id),
            ("account", account_id),
            ("instrument", instrument_id),
        )
        for scope, subject in subjects:
            own = self._overrides.get((scope, subject))
            fleet = self._overrides.get((scope, "*"))
            for kind in LIMIT_KINDS:
                value = _value(own, kind)
                if value is None:
                    value = _value(fleet, kind)
                if value is None:
                    value = _value(self._defaults[scope], kind)
                if value is not None and value != UNLIMITED:
                    limits.append(Limit(scope, subject, kind, value))
        resolved = tuple(limits)
        if len(self._resolved) >= MAX_CACHED:
            self._resolved.clear()
        self._resolved[memo] = resolved
        return resolved
