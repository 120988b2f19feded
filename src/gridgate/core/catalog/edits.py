"""The catalog edited at run time: an operator creates and edits instruments, suppliers and
offers, and disables or enables offers — effective at once in the process that made the change
(``on_change`` reloads its catalog) and in every other within ``changes.poll_seconds`` (the
change feed). Each change is checked as the config file's catalog is, audited, and kept across
restarts: the config's seeding never overwrites a row an operator edited.

The ``*Fields`` structs are what a caller sends: every field optional, ``UNSET`` meaning "keep
what is there" (for a create: the default). Prices are exact USD decimals per 1M tokens.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import msgspec

from gridgate.core.access import Actor, require_operator
from gridgate.core.audit_log import note
from gridgate.echo import capped
from gridgate.errors import NotFound, ValidationFailed
from gridgate.money import MoneyError, format_usd, usd_to_nanos
from gridgate.storage.ports.catalog import CatalogStore
from gridgate.storage.ports.errors import Conflict, NotFoundInStore
from gridgate.storage.records import (
    Capability,
    InstrumentRecord,
    OfferRecord,
    SupplierRecord,
    WireFormat,
)

UNSET: Any = msgspec.UNSET
R = TypeVar("R", InstrumentRecord, SupplierRecord, OfferRecord)
CAPABILITIES: tuple[Capability, ...] = ("tools", "json_schema", "vision", "logprobs")
MAX_TOKENS = 100_000_000  # context windows and output limits: far past any model's
MAX_PRICE_NANOS = 1_000_000 * 1_000_000_000  # $1,000,000 per 1M tokens
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_OFFER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}")
_MODEL = re.compile(r"[^\s\x00-\x1f]{1,200}")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_URL = re.compile(r"https?://[^\s/$.?#][^\s]{0,2000}")


class _Fields(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class SupplierFields(_Fields, forbid_unknown_fields=True, omit_defaults=True):
    name: str | msgspec.UnsetType = UNSET  # create only
    wire: WireFormat | msgspec.UnsetType = UNSET
    base_url: str | msgspec.UnsetType = UNSET
    api_key_env: str | msgspec.UnsetType | None = UNSET  # the env var's NAME, never a key
    zero_retention: bool | msgspec.UnsetType = UNSET
    enabled: bool | msgspec.UnsetType = UNSET


class OfferFields(_Fields, forbid_unknown_fields=True, omit_defaults=True):
    id: str | msgspec.UnsetType = UNSET  # create only; default "<supplier>/<instrument>/<model>"
    supplier: str | msgspec.UnsetType = UNSET
    instrument: str | msgspec.UnsetType = UNSET
    model: str | msgspec.UnsetType = UNSET
    input_usd_per_m: str | msgspec.UnsetType = UNSET
    output_usd_per_m: str | msgspec.UnsetType = UNSET
    quality: float | msgspec.UnsetType = UNSET
    context: int | msgspec.UnsetType = UNSET
    max_output: int | msgspec.UnsetType = UNSET
    capabilities: list[Capability] | msgspec.UnsetType = UNSET
    enabled: bool | msgspec.UnsetType = UNSET  # false: an operator's disable (kept in store)


class InstrumentFields(_Fields, forbid_unknown_fields=True, omit_defaults=True):
    id: str | msgspec.UnsetType = UNSET  # create only
    display_name: str | msgspec.UnsetType = UNSET
    quality_floor: float | msgspec.UnsetType = UNSET
    ttft_ceiling_ms: int | msgspec.UnsetType | None = UNSET
    throughput_floor_tps: float | msgspec.UnsetType | None = UNSET
    context_floor: int | msgspec.UnsetType = UNSET
    max_output_floor: int | msgspec.UnsetType = UNSET
    context_length: int | msgspec.UnsetType = UNSET
    max_input_tokens: int | msgspec.UnsetType = UNSET
    max_completion_tokens: int | msgspec.UnsetType = UNSET
    image_input: bool | msgspec.UnsetType = UNSET
    enabled: bool | msgspec.UnsetType = UNSET
    bill_out_of_spec: bool | msgspec.UnsetType = UNSET


def _given(fields: _Fields) -> dict[str, Any]:
    return {
        name: getattr(fields, name)
        for name in fields.__struct_fields__
        if getattr(fields, name) is not UNSET
    }


def _fail(param: str, why: str) -> ValidationFailed:
    return ValidationFailed(f"{param}: {why}", param=param)


def _tokens(param: str, value: int, *, minimum: int = 1) -> int:
    if not minimum <= value <= MAX_TOKENS:
        raise _fail(param, f"must be {minimum} to {MAX_TOKENS}")
    return value


def _price(param: str, usd: str) -> int:
    try:
        nanos = usd_to_nanos(usd)
    except MoneyError as exc:
        raise _fail(param, str(exc)) from exc
    if not 0 <= nanos <= MAX_PRICE_NANOS:
        raise _fail(param, "must be 0 to 1000000 USD per 1M tokens")
    return nanos


def _score(param: str, value: float) -> float:
    if not 0 <= value <= 100:
        raise _fail(param, "must be 0 to 100")
    return float(value)


def _unset_create_only(given: dict[str, Any], key: str, what: str) -> None:
    if key in given:
        raise _fail(key, f"a {what}'s {key} cannot change (create a new one)")


@contextlib.contextmanager
def _saving(what: str, key: str, param: str) -> Iterator[None]:
    """The store's refusals of a catalog write, as the caller's errors: a key taken (422
    ``taken``, naming ``param``) or a row gone (404)."""
    try:
        yield
    except Conflict as exc:
        raise ValidationFailed(
            f"{param}: a {what} {capped(key)!r} exists already", param=param, code="taken"
        ) from exc
    except NotFoundInStore as exc:
        raise NotFound(f"no {what} {capped(key)!r}") from exc


class CatalogEditor:
    def __init__(
        self, store: CatalogStore, *, on_change: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self._store = store
        self._on_change = on_change

    async def _changed(self) -> None:
        if self._on_change is not None:
            await self._on_change()

    async def _catalog(
        self,
    ) -> tuple[dict[str, InstrumentRecord], dict[str, SupplierRecord], dict[str, OfferRecord]]:
        instruments, suppliers, offers = await self._store.load_catalog()
        return (
            {i.id: i for i in instruments},
            {s.name: s for s in suppliers},
            {o.id: o for o in offers},
        )

    async def _commit(
        self,
        actor: Actor,
        what: str,
        record: R,
        current: R,
        create: bool,
        detail: dict[str, Any],
        save: Callable[..., Awaitable[R]],
    ) -> R:
        """Write ``record`` (audited as ``<what>.create`` or ``.update`` with ``detail``) and
        reload this process's catalog; an edit that changes nothing writes nothing."""
        if not create and record == current:
            return current
        key = record.name if isinstance(record, SupplierRecord) else record.id
        action = f"{what}.{'create' if create else 'update'}"
        with _saving(what, key, "name" if what == "supplier" else "id"):
            saved = await save(record, create=create, audit=note(actor, action, **detail))
        await self._changed()
        return saved

    # -- reading --------------------------------------------------------------------------------
    async def suppliers(self, actor: Actor) -> list[SupplierRecord]:
        require_operator(actor)
        return list((await self._catalog())[1].values())

    async def offers(self, actor: Actor) -> list[OfferRecord]:
        require_operator(actor)
        return list((await self._catalog())[2].values())

    async def offer(self, actor: Actor, offer_id: str) -> OfferRecord:
        require_operator(actor)
        found = (await self._catalog())[2].get(offer_id)
        if found is None:
            raise NotFound(f"no offer {capped(offer_id)!r}")
        return found

    async def supplier(self, actor: Actor, name: str) -> SupplierRecord:
        require_operator(actor)
        found = (await self._catalog())[1].get(name)
        if found is None:
            raise NotFound(f"no supplier {capped(name)!r}")
        return found

    # -- suppliers ------------------------------------------------------------------------------
    async def save_supplier(
        self, actor: Actor, fields: SupplierFields, *, name: str | None = None
    ) -> SupplierRecord:
        """Create (``name`` None: the fields name it) or edit the supplier ``name``."""
        require_operator(actor)
        given = _given(fields)
        create = name is None
        if create:
            current = SupplierRecord(name="", wire="openai", base_url="")
            given.setdefault("name", "")
        else:
            _unset_create_only(given, "name", "supplier")
            current = await self.supplier(actor, name or "")
        merged = msgspec.structs.replace(current, **given)
        if not _NAME.fullmatch(merged.name):
            raise _fail("name", "1 to 64 lower-case letters, digits, '.', '_' or '-'")
        if not _URL.fullmatch(merged.base_url):
            raise _fail("base_url", "must be an http(s) URL")
        record = msgspec.structs.replace(merged, base_url=merged.base_url.rstrip("/"))
        if record.api_key_env is not None and not _ENV.fullmatch(record.api_key_env):
            raise _fail(
                "api_key_env",
                "the NAME of an environment variable (letters, digits, '_'), not a key",
            )
        return await self._commit(
            actor, "supplier", record, current, create, _shown(given), self._store.save_supplier
        )

    # -- offers ---------------------------------------------------------------------------------
    async def save_offer(
        self, actor: Actor, fields: OfferFields, *, offer_id: str | None = None
    ) -> OfferRecord:
        """Create (``offer_id`` None) or edit an offer. ``enabled: false`` is an operator's
        disable (``set_offer_enabled``), which config seeding keeps."""
        require_operator(actor)
        instruments, suppliers, offers = await self._catalog()
        given = _given(fields)
        enabled = given.pop("enabled", None)
        create = offer_id is None
        if create:
            for required in ("supplier", "instrument", "model", "input_usd_per_m",
                             "output_usd_per_m", "quality", "context", "max_output"):  # fmt: skip
                if required not in given:
                    raise _fail(required, "required to create an offer")
            current = OfferRecord(
                id="",
                supplier="",
                instrument="",
                model="",
                input_per_m=0,
                output_per_m=0,
                quality=0,
                context=1,
                max_output=1,
            )
        else:
            _unset_create_only(given, "id", "offer")
            found = offers.get(offer_id or "")
            if found is None:
                raise NotFound(f"no offer {capped(offer_id)!r}")
            current = found
        values: dict[str, Any] = {}
        if "input_usd_per_m" in given:
            values["input_per_m"] = _price("input_usd_per_m", given.pop("input_usd_per_m"))
        if "output_usd_per_m" in given:
            values["output_per_m"] = _price("output_usd_per_m", given.pop("output_usd_per_m"))
        if "instrument" in given:
            given["instrument"] = given["instrument"].strip().lower()
        if "capabilities" in given:
            given["capabilities"] = tuple(
                c for c in CAPABILITIES if c in set(given["capabilities"])
            )
        record = msgspec.structs.replace(current, **given, **values)
        if record.supplier not in suppliers:
            raise _fail("supplier", f"no supplier {capped(record.supplier)!r}")
        if record.instrument not in instruments:
            raise _fail("instrument", f"no instrument {capped(record.instrument)!r}")
        if not _MODEL.fullmatch(record.model):
            raise _fail("model", "1 to 200 characters, no spaces")
        _score("quality", record.quality)
        _tokens("context", record.context)
        _tokens("max_output", record.max_output)
        if record.max_output > record.context:
            raise _fail("max_output", "cannot exceed the context window")
        if create:
            new_id = fields.id if isinstance(fields.id, str) else ""
            new_id = new_id or f"{record.supplier}/{record.instrument}/{record.model}"
            if not _OFFER_ID.fullmatch(new_id):
                raise _fail("id", "1 to 200 letters, digits or '._:/@+-'")
            record = msgspec.structs.replace(record, id=new_id)
        shown = {**_shown(given), **{k: format_usd(v) for k, v in values.items()}}
        saved = await self._commit(
            actor, "offer", record, current, create, shown, self._store.save_offer
        )
        if enabled is not None and enabled == (saved.disabled_us is not None):
            saved = await self._set_disabled(actor, saved.id, disabled=not enabled)
            await self._changed()
        return saved

    async def set_offer_enabled(self, actor: Actor, offer_id: str, enabled: bool) -> OfferRecord:
        """Take an offer out of routing (or back in), in every process within a second; config
        seeding keeps it."""
        require_operator(actor)
        saved = await self._set_disabled(actor, offer_id, disabled=not enabled)
        await self._changed()
        return saved

    async def _set_disabled(self, actor: Actor, offer_id: str, *, disabled: bool) -> OfferRecord:
        action = "offer.disable" if disabled else "offer.enable"
        with _saving("offer", offer_id, "offer_id"):
            return await self._store.set_offer_disabled(
                offer_id, disabled, audit=note(actor, action)
            )

    # -- instruments ----------------------------------------------------------------------------
    async def save_instrument(
        self, actor: Actor, fields: InstrumentFields, *, instrument_id: str | None = None
    ) -> InstrumentRecord:
        """Create (``instrument_id`` None: the fields name it) or edit an instrument's spec and
        published limits."""
        require_operator(actor)
        instruments = (await self._catalog())[0]
        given = _given(fields)
        create = instrument_id is None
        if create:
            for required in ("id", "context_length", "max_input_tokens", "max_completion_tokens"):
                if required not in given:
                    raise _fail(required, "required to create an instrument")
            given["id"] = str(given["id"]).strip().lower()
            current = InstrumentRecord(
                id="",
                display_name="",
                quality_floor=0,
                ttft_ceiling_ms=None,
                throughput_floor_tps=None,
                context_floor=0,
                max_output_floor=0,
                context_length=1,
                max_input_tokens=1,
                max_completion_tokens=1,
            )
        else:
            _unset_create_only(given, "id", "instrument")
            found = instruments.get((instrument_id or "").lower())
            if found is None:
                raise NotFound(f"no instrument {capped(instrument_id)!r}")
            current = found
        record = msgspec.structs.replace(current, **given)
        if not _NAME.fullmatch(record.id):
            raise _fail("id", "1 to 64 lower-case letters, digits, '.', '_' or '-'")
        if not record.display_name.strip():
            record = msgspec.structs.replace(record, display_name=record.id)
        if len(record.display_name) > 200:
            raise _fail("display_name", "at most 200 characters")
        _score("quality_floor", record.quality_floor)
        if record.ttft_ceiling_ms is not None and not 1 <= record.ttft_ceiling_ms <= 3_600_000:
            raise _fail("ttft_ceiling_ms", "must be 1 to 3600000 (or null: no ceiling)")
        tps = record.throughput_floor_tps
        if tps is not None and not 0 < tps <= 1_000_000:
            raise _fail("throughput_floor_tps", "must be above 0, at most 1000000 (or null)")
        _tokens("context_floor", record.context_floor, minimum=0)
        _tokens("max_output_floor", record.max_output_floor, minimum=0)
        _tokens("context_length", record.context_length)
        _tokens("max_input_tokens", record.max_input_tokens)
        _tokens("max_completion_tokens", record.max_completion_tokens)
        if record.max_input_tokens > record.context_length:
            raise _fail("max_input_tokens", "cannot exceed context_length")
        return await self._commit(
            actor, "instrument", record, current, create, _shown(given), self._store.save_instrument
        )


def _shown(given: dict[str, Any]) -> dict[str, Any]:
    """The given fields as an audit note's detail (JSON-ready)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in given.items()}
