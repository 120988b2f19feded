"""The headers an adapter sends a supplier (every wire): built once per supplier, credential
variable and answer kind, with the supplier's secret read from the environment."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gridgate.storage.records import SupplierRecord

# (the Accept header, the supplier's secret or None) → the headers of one request, per wire
HeaderBuilder = Callable[[str, str | None], dict[str, str]]


class SupplierHeaders:
    __slots__ = ("_build", "_cache", "_environ")

    def __init__(self, build: HeaderBuilder, environ: Mapping[str, str]) -> None:
        self._build = build
        self._environ = environ
        # per supplier (and credential variable) and answer kind, built once; never mutated
        self._cache: dict[tuple[str, str | None, bool], dict[str, str]] = {}

    def secret(self, supplier: SupplierRecord) -> str | None:
        return self._environ.get(supplier.api_key_env) if supplier.api_key_env else None

    def get(self, supplier: SupplierRecord, *, stream: bool) -> dict[str, str]:
        key = (supplier.name, supplier.api_key_env, stream)
        headers = self._cache.get(key)
        if headers is None:
            accept = "text/event-stream" if stream else "application/json"
            headers = self._build(accept, self.secret(supplier))
            self._cache[key] = headers
        return headers
