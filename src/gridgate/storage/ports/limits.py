"""Operators' rate-limit overrides (the limiter itself is in ``storage/limiter/``)."""

from __future__ import annotations

from typing import Protocol

from gridgate.storage.records import AuditNote, LimitOverride, LimitScope


class LimitStore(Protocol):
    async def set_limits(
        self, override: LimitOverride, *, audit: AuditNote | None = None
    ) -> LimitOverride:
        """Replace the overrides of one subject (``"*"``: every subject of the scope); an empty
        override removes them. Announced (kind ``limits``, subject ``<scope>:<subject>``).
        A key, account or instrument that does not exist → NotFoundInStore."""

    async def get_limits(self, scope: LimitScope, subject: str) -> LimitOverride | None: ...

    async def list_limits(self) -> list[LimitOverride]: ...
