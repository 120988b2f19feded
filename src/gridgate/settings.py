"""Typed settings from a TOML file plus environment overrides.

The file is parsed into frozen structs that reject unknown keys; every error names the path of
the offending key (``offers[1].input_usd_per_m``). Secrets never live in the file: a supplier
names the environment variable that holds its credential (``api_key_env``).

Resolution order for the file: ``--config PATH``, else ``$GRIDGATE_CONFIG``, else no file
(embedded defaults). Environment overrides, applied after the file:
``GRIDGATE_DATA_DIR``, ``GRIDGATE_DATABASE_URL``, ``GRIDGATE_REDIS_URL``, ``GRIDGATE_HOST``,
``GRIDGATE_PORT``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, NoReturn

import msgspec

from gridgate.money import MoneyError, usd_to_nanos


class SettingsError(ValueError):
    """The configuration is invalid; the message names the config path."""


# raises the SettingsError naming a config path (``server.port``) and what is wrong with it
Fail = Callable[[str, str], NoReturn]


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ServerSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 16 * 1024 * 1024
    access_log: bool = False
    # send `x-gridgate-supplier` naming the serving supplier on every answer
    expose_supplier: bool = True
    # how long a client may take to send its request (see ``connection_guard.py``): its headers
    # (from accept, or from the first byte of a request on a kept-alive connection), a pause in
    # its body, and its whole body; past them it gets 408 and the connection closes. Answers
    # (long streams, slow upstreams) are never bounded by these
    header_timeout_seconds: float = 10.0
    body_idle_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 60.0
    # a kept-alive connection idle between requests is closed after this (longer than the idle
    # timeout of the load balancers in front, e.g. 60 s)
    keepalive_timeout_seconds: float = 75.0
    # connections one process holds at once (0: below its file-descriptor limit, at most 10,000);
    # at the cap the oldest connection that has not sent a whole request is closed for the new
    # one, and when every one is serving a request the new one gets 503 with Retry-After
    max_connections: int = 0
    # with several workers, one that dies is started again (after 0.5 s, doubling up to 30 s);
    # one that dies this many times within the window is not, and the server stops (exit 1)
    worker_restart_limit: int = 5
    worker_restart_window_seconds: float = 60.0


class DatabaseSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # empty → sqlite:///<data_dir>/gridgate.db
    url: str = ""


class BillingSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # a lease (a hold a process serves requests from) lives this long unless its process renews
    # it; a crashed process's leases expire after it and are charged the usage they recorded
    hold_ttl_seconds: int = 120
    # the slice of an account's balance a process leases at a time (at least 16 worst cases)
    lease_usd: Decimal = Decimal("1")
    # a lease with nothing in flight for this long is closed (its rest returns to the ledger)
    lease_idle_seconds: float = 2.0
    # a lease is retired after this long even when busy, so charges reach the ledger steadily
    lease_max_age_seconds: float = 60.0
    lease_tick_seconds: float = 0.5
    # a stream records what it has delivered this often, so that if its process dies the
    # expiry of its lease still charges the delivered part
    checkpoint_seconds: float = 1.0
    # when the balance cannot afford the requested (or default) max tokens, the upstream max
    # tokens is clamped to what it affords; below this many output tokens the answer is 402
    min_output_tokens: int = 256
    sweep_interval_seconds: float = 30.0
    # while the database refuses usage records, this many wait in memory; past it they are
    # spilled to the spool on local disk (usage_spool_dir, default <data_dir>/spool) and written
    # from there once it is back, as are what a process left there when it stopped
    usage_memory_records: int = 50_000
    usage_spool_dir: str = ""
    # at shutdown, how long to keep trying the database before spilling what is left to disk
    usage_shutdown_seconds: float = 10.0

    @property
    def lease_nanos(self) -> int:
        return usd_to_nanos(self.lease_usd)


class UpstreamSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    connect_timeout_seconds: float = 5.0
    first_byte_timeout_seconds: float = 60.0
    idle_timeout_seconds: float = 60.0
    total_timeout_seconds: float = 600.0
    pool_size: int = 512
    # how many qualifying offers a request may try before its first byte (1 = no failover)
    max_attempts: int = 3
    # the whole time a request may take to its first byte, over every attempt (then 504)
    deadline_seconds: float = 120.0
    # while a streamed request waits for its first byte, an SSE comment this often keeps idle
    # proxies from closing the connection (0 = never); the first one commits the answer to 200
    keepalive_seconds: float = 10.0


class HealthSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Offer health: what gridgate measures of every delivery and when an offer leaves (and
    rejoins) the eligible set. See ``core/health/offer_health.py`` for the state machine."""

    enabled: bool = True
    window_size: int = 200  # deliveries kept per offer
    max_age_seconds: float = 300.0  # older deliveries leave the window
    min_samples: int = 20  # measured figures eject only over this many deliveries
    max_error_rate: float = 0.5  # a larger share of failed deliveries ejects
    ttft_percentile: int = 90  # this TTFT percentile must not exceed the instrument's ceiling
    throughput_percentile: int = 50  # this throughput percentile must not fall under the floor
    breaker_failures: int = 5  # failures in a row that open an offer's circuit breaker
    cooldown_seconds: float = 30.0  # an ejected offer waits this long (doubling) before probes
    max_cooldown_seconds: float = 600.0
    probe_concurrency: int = 1  # requests probing an offer on probation at once
    probation_successes: int = 3  # in-spec deliveries in a row that re-admit it
    min_throughput_tokens: int = 32  # shorter answers get no throughput verdict
    # every this often, read what all processes delivered (from the shared usage records) and
    # eject here an offer the fleet measured out of spec; 0 = this process's measurements only
    share_seconds: float = 5.0

    def check(self, fail: Fail) -> None:
        """Validate the knobs, so that ``HealthPolicy.from_settings`` can trust them. The
        messages name the policy's knobs as ``HealthPolicy`` does (``max_age_s`` for
        ``max_age_seconds``, …): they read as they always have."""
        knobs = {_POLICY_NAMES.get(name, name): getattr(self, name) for name in _POLICY_KNOBS}
        for name, value in knobs.items():
            if value <= 0 and name != "max_error_rate":
                fail("health", f"{name} must be positive (got {value})")
        if not 0 <= self.max_error_rate <= 1:
            fail("health", f"max_error_rate must be between 0 and 1 (got {self.max_error_rate})")
        for name in ("ttft_percentile", "throughput_percentile"):
            if knobs[name] > 100:
                fail("health", f"{name} is at most 100 (got {knobs[name]})")
        if self.min_samples > self.window_size:
            fail(
                "health",
                f"min_samples ({self.min_samples}) exceeds window_size ({self.window_size}): "
                "measured figures could never eject",
            )
        if self.cooldown_seconds > self.max_cooldown_seconds:
            fail(
                "health",
                f"cooldown_s ({self.cooldown_seconds}) exceeds max_cooldown_s "
                f"({self.max_cooldown_seconds})",
            )
        if self.min_throughput_tokens < 2:
            fail(
                "health",
                "min_throughput_tokens must be at least 2 (throughput counts the tokens after "
                f"the first; got {self.min_throughput_tokens})",
            )
        if self.share_seconds < 0:
            fail("health.share_seconds", "must be 0 (off) or positive")


# the knobs ``HealthPolicy`` takes, in its order, and the three it names differently
_POLICY_KNOBS = (
    "window_size",
    "max_age_seconds",
    "min_samples",
    "max_error_rate",
    "ttft_percentile",
    "throughput_percentile",
    "breaker_failures",
    "cooldown_seconds",
    "max_cooldown_seconds",
    "probe_concurrency",
    "probation_successes",
    "min_throughput_tokens",
)
_POLICY_NAMES = {
    "max_age_seconds": "max_age_s",
    "cooldown_seconds": "cooldown_s",
    "max_cooldown_seconds": "max_cooldown_s",
}


class HedgingSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Hedging for the TTFT promise: a stream with no first chunk at ``fraction`` of its
    instrument's TTFT ceiling starts the next offer too; the first to answer serves."""

    enabled: bool = True
    fraction: float = 0.5  # of the instrument's TTFT ceiling
    max_extra: int = 1  # offers started beside the first, per request


class AuthSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # how long a verified key may be served from the per-process cache (0: read it on every
    # request). A revocation still takes effect on the next request on SQLite (every
    # revocation grows a marker file each request checks) and within changes.poll_seconds on
    # PostgreSQL (the change feed): core/accounts/auth.py
    cache_seconds: float = 30.0


class LimitSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The default limits of one scope (every key, every account or every instrument); unset =
    no limit. Per-subject overrides live in the store (``gridgate keys limits`` …)."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None  # input + output, reserved at the worst case
    concurrent: int | None = None  # requests in flight at once


class LimitsSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    key: LimitSettings = msgspec.field(default_factory=LimitSettings)
    account: LimitSettings = msgspec.field(default_factory=LimitSettings)
    instrument: LimitSettings = msgspec.field(default_factory=LimitSettings)  # across the fleet
    # when the limiter's backend (Redis) cannot be reached: "closed" answers 503 (nothing is
    # served that the limits could not vouch for); "open" serves unlimited, logging every 10 s
    on_backend_failure: Literal["closed", "open"] = "closed"


class RedisSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # empty: rate limits are counted per process, in memory (one process); set it (e.g.
    # redis://127.0.0.1:6379/0) when several processes or hosts serve: the limits are then
    # exact across all of them. Env override: GRIDGATE_REDIS_URL (put a password there, not in
    # this file)
    url: str = ""
    # prefixes every Redis key gridgate writes, so several deployments can share one Redis
    namespace: str = "gg"
    # the rate limiter's Redis client: "resp", gridgate's own pipelined one
    # (storage/limiter/resp.py), or "redis-py", redis-py's asyncio client (needs the extra
    # gridgate[redis-py]); kept while the two are compared (issue 17)
    client: Literal["resp", "redis-py"] = "resp"


class ChangesSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Cross-process state: every process reads the store's change feed (a revoked key, a
    changed limit, a disabled offer, a catalog change) this often and drops what it cached."""

    poll_seconds: float = 0.25
    # the fallback: cached limit overrides and the catalog are reread this often regardless
    refresh_seconds: float = 30.0


class ResponsesSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Stored responses (the Responses API's ``store: true``): kept this many days, then swept
    (every ``sweep_seconds``, by each process). 0 stores nothing: ``store`` is answered false."""

    retention_days: int = 30
    sweep_seconds: float = 60.0


class WebhookSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Webhook delivery (``core/webhooks/delivery.py`` documents the knobs)."""

    enabled: bool = True
    poll_seconds: float = 1.0
    timeout_seconds: float = 10.0
    max_attempts: int = 10
    max_age_hours: float = 72.0
    backoff_seconds: float = 5.0
    max_backoff_seconds: float = 3600.0
    batch: int = 20
    ejection_window_seconds: float = 300.0

    def check(self, fail: Fail) -> None:
        for name in self.__struct_fields__[1:]:
            if getattr(self, name) <= 0:
                fail(f"webhooks.{name}", "must be positive")
        if self.max_backoff_seconds < self.backoff_seconds:
            fail("webhooks.max_backoff_seconds", "must be at least backoff_seconds")


class InstrumentSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    display_name: str = ""
    quality_floor: float = 0.0
    ttft_ceiling_ms: int | None = None
    throughput_floor_tps: float | None = None
    context_floor: int = 0
    max_output_floor: int = 0
    context_length: int
    max_input_tokens: int
    max_completion_tokens: int
    image_input: bool = False
    reasoning_efforts: list[str] = msgspec.field(default_factory=list)
    default_reasoning_effort: str | None = None
    enabled: bool = True
    # false (the default): a delivery that breaks this spec (a first token later than
    # ttft_ceiling_ms, an answer slower than throughput_floor_tps) is not billed; true: it is
    bill_out_of_spec: bool = False


class SupplierSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    wire: Literal["openai", "anthropic", "openai-responses"] = "openai"
    base_url: str
    api_key_env: str | None = None
    zero_retention: bool = True
    enabled: bool = True


class OfferSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    supplier: str
    instrument: str
    model: str
    input_usd_per_m: Decimal
    output_usd_per_m: Decimal
    quality: float
    context: int
    max_output: int
    capabilities: list[Literal["tools", "json_schema", "vision", "logprobs"]] = msgspec.field(
        default_factory=list
    )
    enabled: bool = True
    id: str = ""  # default "<supplier>/<instrument>/<model>"


class LoggingSettings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # json: one JSON object per line (ts, level, logger, msg, request_id, …); text: classic lines
    format: Literal["json", "text"] = "json"
    level: str = "INFO"  # DEBUG, INFO, WARNING, ERROR or CRITICAL


class Settings(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    data_dir: str = ".gridgate"
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    logging: LoggingSettings = msgspec.field(default_factory=LoggingSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    billing: BillingSettings = msgspec.field(default_factory=BillingSettings)
    upstream: UpstreamSettings = msgspec.field(default_factory=UpstreamSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    health: HealthSettings = msgspec.field(default_factory=HealthSettings)
    hedging: HedgingSettings = msgspec.field(default_factory=HedgingSettings)
    limits: LimitsSettings = msgspec.field(default_factory=LimitsSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    changes: ChangesSettings = msgspec.field(default_factory=ChangesSettings)
    responses: ResponsesSettings = msgspec.field(default_factory=ResponsesSettings)
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)
    instruments: list[InstrumentSettings] = msgspec.field(default_factory=list)
    suppliers: list[SupplierSettings] = msgspec.field(default_factory=list)
    offers: list[OfferSettings] = msgspec.field(default_factory=list)

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{Path(self.data_dir) / 'gridgate.db'}"

    @property
    def usage_spool_dir(self) -> Path:
        return Path(self.billing.usage_spool_dir or Path(self.data_dir) / "spool")


_PATH_RE = re.compile(r"at `\$(?P<path>[^`]*)`")
_UNKNOWN_RE = re.compile(r"unknown field `(?P<field>[^`]+)`")


def _config_path(message: str) -> str:
    match = _PATH_RE.search(message)
    path = match.group("path").lstrip(".") if match else ""
    unknown = _UNKNOWN_RE.search(message)
    if unknown:
        path = f"{path}.{unknown.group('field')}" if path else unknown.group("field")
    return path or "(top level)"


def _describe(message: str) -> str:
    text = _PATH_RE.sub("", message).strip().rstrip("-").strip()
    if _UNKNOWN_RE.search(message):
        return "unknown key"
    return text[0].lower() + text[1:] if text else "invalid value"


def parse_settings(raw: Mapping[str, Any], *, source: str = "config") -> Settings:
    """Build Settings from a decoded TOML mapping; errors name the path, e.g.
    ``config.toml: offers[0].price: unknown key``."""
    try:
        settings = msgspec.convert(dict(raw), Settings, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        raise SettingsError(f"{source}: {_config_path(message)}: {_describe(message)}") from exc
    _check(settings, source)
    return settings


def _check(settings: Settings, source: str) -> None:
    """Each section in turn; the first bad knob raises, naming its config path."""

    def fail(path: str, why: str) -> NoReturn:
        raise SettingsError(f"{source}: {path}: {why}")

    _check_server(settings.server, settings.logging, fail)
    _check_billing(settings.billing, fail)
    _check_upstream(settings, fail)
    _check_limits(settings.limits, fail)
    _check_backends(settings, fail)
    _check_catalog(settings, fail)
    settings.webhooks.check(fail)


def _check_server(server: ServerSettings, logging: LoggingSettings, fail: Fail) -> None:
    if not 0 < server.port < 65536:
        fail("server.port", "must be between 1 and 65535")
    if server.workers < 1:
        fail("server.workers", "must be at least 1")
    if server.max_body_bytes < 1024:
        fail("server.max_body_bytes", "must be at least 1024")
    for knob in (
        "header_timeout_seconds",
        "body_idle_timeout_seconds",
        "body_timeout_seconds",
        "keepalive_timeout_seconds",
    ):
        if not getattr(server, knob) > 0:
            fail(f"server.{knob}", "must be positive")
    if server.max_connections < 0:
        fail("server.max_connections", "must be 0 (below the file-descriptor limit) or more")
    if server.worker_restart_limit < 1:
        fail("server.worker_restart_limit", "must be at least 1")
    if not server.worker_restart_window_seconds > 0:
        fail("server.worker_restart_window_seconds", "must be positive")
    if logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        fail("logging.level", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")


def _check_billing(billing: BillingSettings, fail: Fail) -> None:
    try:
        if usd_to_nanos(billing.lease_usd) <= 0:
            fail("billing.lease_usd", "must be positive")
    except MoneyError as exc:
        fail("billing.lease_usd", str(exc))
    if billing.hold_ttl_seconds < 10:
        fail("billing.hold_ttl_seconds", "must be at least 10 (leases renew at half of it)")
    if billing.min_output_tokens < 1:
        fail("billing.min_output_tokens", "must be at least 1")
    if billing.usage_memory_records < 1:
        fail("billing.usage_memory_records", "must be at least 1")
    if billing.usage_shutdown_seconds < 0:
        fail("billing.usage_shutdown_seconds", "must be 0 or more")


def _check_upstream(settings: Settings, fail: Fail) -> None:
    """How requests go upstream: attempts, offer health, hedging, deadlines (in this order)."""
    if settings.upstream.max_attempts < 1:
        fail("upstream.max_attempts", "must be at least 1")
    settings.health.check(fail)
    if not 0 < settings.hedging.fraction <= 1:
        fail("hedging.fraction", "must be above 0 and at most 1")
    if settings.hedging.max_extra < 0:
        fail("hedging.max_extra", "must be 0 or more")
    if settings.upstream.deadline_seconds <= 0:
        fail("upstream.deadline_seconds", "must be positive")
    if settings.upstream.keepalive_seconds < 0:
        fail("upstream.keepalive_seconds", "must be 0 (off) or positive")


def _check_limits(limits: LimitsSettings, fail: Fail) -> None:
    for scope in ("key", "account", "instrument"):
        limit: LimitSettings = getattr(limits, scope)
        for knob in ("requests_per_minute", "tokens_per_minute", "concurrent"):
            knob_value: int | None = getattr(limit, knob)
            if knob_value is not None and knob_value < 0:
                fail(f"limits.{scope}.{knob}", "must be 0 or more (leave it out for no limit)")


def _check_backends(settings: Settings, fail: Fail) -> None:
    """Redis, the change feed, stored responses and the database."""
    redis_url = settings.redis.url
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        fail("redis.url", "must start with redis://, rediss:// or unix://")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", settings.redis.namespace):
        fail("redis.namespace", "1 to 64 letters, digits, '_', '.' or '-'")
    if settings.changes.poll_seconds <= 0 or settings.changes.refresh_seconds <= 0:
        fail("changes", "poll_seconds and refresh_seconds must be positive")
    if not 0 <= settings.responses.retention_days <= 3650:
        fail("responses.retention_days", "must be 0 (store nothing) to 3650")
    if settings.responses.sweep_seconds <= 0:
        fail("responses.sweep_seconds", "must be positive")
    url = settings.database.url
    if url and not url.startswith(("sqlite://", "postgresql://", "postgres://")):
        fail("database.url", "must start with sqlite:/// or postgresql://")


def _check_catalog(settings: Settings, fail: Fail) -> None:
    """Suppliers, offers (naming known suppliers and instruments) and instruments."""
    supplier_names: set[str] = set()
    for i, sup in enumerate(settings.suppliers):
        if sup.name in supplier_names:
            fail(f"suppliers[{i}].name", f"duplicate supplier {sup.name!r}")
        supplier_names.add(sup.name)
        if not sup.base_url.startswith(("http://", "https://")):
            fail(f"suppliers[{i}].base_url", "must be an http(s) URL")
    instrument_ids = {i.id.lower() for i in settings.instruments} | set(DEFAULT_INSTRUMENT_IDS)
    offer_ids: set[str] = set()
    for i, offer in enumerate(settings.offers):
        _check_offer(i, offer, supplier_names, instrument_ids, fail)
        oid = offer_id(offer)
        if oid in offer_ids:
            fail(f"offers[{i}].id", f"duplicate offer {oid!r}")
        offer_ids.add(oid)
    for i, inst in enumerate(settings.instruments):
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", inst.id.lower()):
            fail(f"instruments[{i}].id", "must be letters, digits, '.', '_' or '-'")


def _check_offer(
    i: int, offer: OfferSettings, suppliers: set[str], instruments: set[str], fail: Fail
) -> None:
    if offer.supplier not in suppliers:
        fail(f"offers[{i}].supplier", f"no supplier named {offer.supplier!r}")
    if offer.instrument.lower() not in instruments:
        fail(f"offers[{i}].instrument", f"no instrument named {offer.instrument!r}")
    for field in ("input_usd_per_m", "output_usd_per_m"):
        value: Decimal = getattr(offer, field)
        try:
            nanos = usd_to_nanos(value)
        except MoneyError as exc:
            fail(f"offers[{i}].{field}", str(exc))
        if nanos < 0:
            fail(f"offers[{i}].{field}", "cannot be negative")
    if offer.context < 1 or offer.max_output < 1:
        fail(f"offers[{i}]", "context and max_output must be positive")


def offer_id(offer: OfferSettings) -> str:
    return offer.id or f"{offer.supplier}/{offer.instrument.lower()}/{offer.model}"


# The reference exchange's text instruments (their thresholds: core/catalog/reference.py).
DEFAULT_INSTRUMENT_IDS = ("text-standard", "text-prime", "text-max")


def with_server(settings: Settings, **server: Any) -> Settings:
    """``settings`` with some ``[server]`` values replaced (``gridgate serve --workers N``…),
    checked like the file's: an error names the option."""
    raw = msgspec.to_builtins(settings)
    raw["server"] = {**raw["server"], **server}
    return parse_settings(raw, source="command line")


def load_settings(
    config_path: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    data_dir: str | None = None,
) -> Settings:
    """Read the config file (if any), apply env overrides and the ``--data-dir`` option."""
    env = os.environ if environ is None else environ
    path = config_path or env.get("GRIDGATE_CONFIG") or None
    raw: dict[str, Any] = {}
    source = "defaults"
    if path:
        source = path
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"), parse_float=Decimal)
        except FileNotFoundError as exc:
            raise SettingsError(f"{path}: no such config file") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from exc
    raw = _with_overrides(raw, env, data_dir)
    return parse_settings(raw, source=source)


def _with_overrides(
    raw: dict[str, Any], env: Mapping[str, str], data_dir: str | None
) -> dict[str, Any]:
    out = dict(raw)
    chosen_dir = data_dir or env.get("GRIDGATE_DATA_DIR")
    if chosen_dir:
        out["data_dir"] = chosen_dir
    if env.get("GRIDGATE_DATABASE_URL"):
        out["database"] = {**out.get("database", {}), "url": env["GRIDGATE_DATABASE_URL"]}
    if env.get("GRIDGATE_REDIS_URL"):
        out["redis"] = {**out.get("redis", {}), "url": env["GRIDGATE_REDIS_URL"]}
    server = dict(out.get("server", {}))
    if env.get("GRIDGATE_HOST"):
        server["host"] = env["GRIDGATE_HOST"]
    if env.get("GRIDGATE_PORT"):
        try:
            server["port"] = int(env["GRIDGATE_PORT"])
        except ValueError as exc:
            raise SettingsError("GRIDGATE_PORT: must be an integer") from exc
    if server:
        out["server"] = server
    return out
