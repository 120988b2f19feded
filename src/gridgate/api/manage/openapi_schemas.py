"""The JSON Schemas of what the management API answers, one per shape in ``shapes.py`` (and the
error envelope), for its OpenAPI document. Every object lists every field it always carries, and
no other: the tests check real answers against these schemas, so they cannot drift from
``shapes.py`` unnoticed. Request bodies are not here: their schemas come from the msgspec structs
that decode them."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], *, description: str | None = None) -> Schema:
    """An object with exactly ``properties``, all of them always present."""
    schema: Schema = {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def nullable(schema: Schema) -> Schema:
    kind = schema["type"]
    return {**schema, "type": [kind, "null"]}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def string() -> Schema:
    return {"type": "string"}


def integer() -> Schema:
    return {"type": "integer"}


def number() -> Schema:
    return {"type": "number"}


def boolean() -> Schema:
    return {"type": "boolean"}


def when() -> Schema:
    return {"type": "string", "format": "date-time"}


def day() -> Schema:
    return {"type": "string", "format": "date"}


def usd() -> Schema:
    return {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?$", "description": "USD"}


def money(prefix: str) -> dict[str, Schema]:
    return {f"{prefix}_usd": usd(), f"{prefix}_nanos": integer()}


def _price() -> Schema:
    return obj({"usd_per_1m_input_tokens": usd(), "usd_per_1m_output_tokens": usd()})


def _error() -> Schema:
    detail = {"type": "object", "properties": {"detail": string()}, "required": ["detail"]}
    error = {
        "type": "object",
        "required": ["message", "type"],
        "properties": {
            "message": string(),
            "type": string(),
            "param": nullable(string()),
            "code": nullable(string()),
        },
    }
    return {
        "type": "object",
        "required": ["errors", "error"],
        "properties": {"errors": detail, "error": error},
        "description": "The reference exchange's envelope (`errors.detail`) with OpenAI's "
        "(`error`); `error.param` names the offending parameter.",
    }


def _limit_values(kind: Schema) -> Schema:
    return obj(
        {"requests_per_minute": kind, "tokens_per_minute": kind, "concurrent": kind},
    )


def _usage() -> Schema:
    return obj(
        {
            "request_id": string(),
            "created_at": when(),
            "key_id": string(),
            "instrument": string(),
            "supplier": nullable(string()),
            "upstream_model": nullable(string()),
            "input_tokens": integer(),
            "output_tokens": integer(),
            "reasoning_tokens": integer(),
            "cached_tokens": integer(),
            "estimated": boolean(),
            **money("cost"),
            "outcome": string(),
            "status": integer(),
            "billed": boolean(),
            "hold_id": nullable(string()),
            "offer_id": nullable(string()),
            "stream": boolean(),
            "ttft_ms": nullable(number()),
            "duration_ms": nullable(number()),
            "in_spec": nullable(boolean()),
            "spec_note": nullable(string()),
        }
    )


def _instrument() -> Schema:
    spec = obj(
        {
            "quality_floor": number(),
            "ttft_ceiling_ms": nullable(integer()),
            "throughput_floor_tps": nullable(number()),
            "context_floor": integer(),
            "max_output_floor": integer(),
            "bill_out_of_spec": boolean(),
        }
    )
    limits = obj(
        {
            "context_length": integer(),
            "max_input_tokens": integer(),
            "max_completion_tokens": integer(),
        }
    )
    price_or_none = {"oneOf": [ref("Price"), {"type": "null"}]}
    return obj(
        {
            "id": string(),
            "display_name": string(),
            "enabled": boolean(),
            "spec": spec,
            "limits": limits,
            "image_input": boolean(),
            "available_offers": integer(),
            "best_price": price_or_none,
            "average_price_30d": price_or_none,
            "price_history": array(
                obj({"date": day(), "offer_id": nullable(string()), "price": price_or_none})
            ),
            "edited_at": nullable(when()),
        }
    )


def _offer_status() -> Schema:
    spec = obj(
        {
            "ttft_ceiling_ms": nullable(integer()),
            "throughput_floor_tps": nullable(number()),
            "bill_out_of_spec": boolean(),
        }
    )
    return obj(
        {
            "offer_id": string(),
            "supplier": string(),
            "instrument": string(),
            "model": string(),
            "enabled": boolean(),
            "spec": {"oneOf": [spec, {"type": "null"}]},
            "deliveries": integer(),
            "failures": integer(),
            "error_rate": number(),
            "ttft_samples": integer(),
            "ttft_p50_ms": nullable(number()),
            "ttft_p90_ms": nullable(number()),
            "throughput_samples": integer(),
            "throughput_p50_tps": nullable(number()),
            "in_spec_fraction": nullable(number()),
            "verdict": string(),
            "breaches": array(string()),
        }
    )


def _credential(secret: str, prefix: str, owner: str) -> Schema:
    return obj(
        {
            "id": string(),
            owner: string(),
            "name": string(),
            prefix: string(),
            secret: {
                "type": ["string", "null"],
                "description": "The secret: only in the answer that created it, null elsewhere",
            },
            "is_active": boolean(),
            "created_at": when(),
            "expires_at": nullable(when()),
            "last_used_at": nullable(when()),
            "revoked_at": nullable(when()),
        }
    )


def response_schemas() -> dict[str, Schema]:
    """The components/schemas of every answer, by name."""
    setting = {
        "type": ["integer", "string", "null"],
        "description": 'a number, "unlimited" or null',
    }
    return {
        "Error": _error(),
        "Price": _price(),
        "User": obj(
            {
                "id": string(),
                "email": string(),
                "name": string(),
                "role": enum("operator", "owner", "member"),
                "account_id": nullable(string()),
                "is_active": boolean(),
                "created_at": when(),
                "disabled_at": nullable(when()),
            }
        ),
        "ApiKey": _credential("key", "key_prefix", "account_id"),
        "Token": _credential("token", "token_prefix", "user_id"),
        "Balance": obj({"account_id": string(), **money("balance")}),
        "Account": obj(
            {
                "id": string(),
                "name": string(),
                "balance_usd": usd(),
                "balance_nanos": integer(),
                "leased_usd": usd(),
                "created_at": when(),
            },
            description="`balance`: what is left after every charge recorded so far; `leased`:"
            " the part of it running gateway processes hold as leases right now",
        ),
        "LedgerEntry": obj(
            {
                "id": integer(),
                "account_id": string(),
                "kind": enum("credit", "hold", "settle", "release", "refund", "adjustment"),
                **money("amount"),
                "hold_id": nullable(string()),
                "idempotency_key": nullable(string()),
                "memo": nullable(string()),
                "created_at": when(),
            }
        ),
        "MoneyMoved": obj({"entry": ref("LedgerEntry"), "account": ref("Account")}),
        "Limits": obj(
            {
                "scope": enum("account", "key", "instrument"),
                "subject": string(),
                "overrides": _limit_values(setting),
                "effective": _limit_values(nullable(integer())),
            }
        ),
        "UsageRecord": _usage(),
        "DailyUsage": obj(
            {
                "date": day(),
                "instrument": string(),
                "requests": integer(),
                "billed_requests": integer(),
                "input_tokens": integer(),
                "output_tokens": integer(),
                **money("cost"),
            }
        ),
        "AuditEntry": obj(
            {
                "id": integer(),
                "actor": string(),
                "action": string(),
                "subject": string(),
                "detail": {"type": "object"},
                "created_at": when(),
            }
        ),
        "Supplier": obj(
            {
                "name": string(),
                "wire": enum("openai", "anthropic"),
                "base_url": string(),
                "api_key_env": nullable(string()),
                "zero_retention": boolean(),
                "enabled": boolean(),
                "edited_at": nullable(when()),
            }
        ),
        "Offer": obj(
            {
                "id": string(),
                "supplier": string(),
                "instrument": string(),
                "model": string(),
                "input_usd_per_m": usd(),
                "output_usd_per_m": usd(),
                "quality": number(),
                "context": integer(),
                "max_output": integer(),
                "capabilities": array(enum("tools", "json_schema", "vision", "logprobs")),
                "enabled": boolean(),
                "disabled_at": nullable(when()),
                "edited_at": nullable(when()),
            }
        ),
        "Instrument": _instrument(),
        "OfferStatus": _offer_status(),
    }
