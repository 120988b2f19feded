"""A usage record as a receipt: exact decimal money, the cost-status words, and the summary's
bucket bound (pure; the SQL side of the words is ``tests/storage/test_receipts.py``)."""

from __future__ import annotations

import pytest

from gridgate.core.accounts.receipt_view import (
    cost_status_of,
    effective_price,
    iso_time,
    price_per_token,
    receipt_json,
    status_of,
)
from gridgate.core.accounts.receipts import MAX_BUCKETS, _buckets
from gridgate.errors import BadRequest
from gridgate.storage.ports.receipts import SummaryRow
from gridgate.storage.records import UsageRecord


def record(**kw: object) -> UsageRecord:
    fields: dict[str, object] = {
        "request_id": "req_1",
        "created_us": 1_767_225_600_000_001,  # 2026-01-01T00:00:00.000001Z
        "account_id": "acct_a",
        "key_id": "key_a",
        "instrument": "text-prime",
        "supplier": "sim-a",
        "offer_id": "sim-a/text-prime/m",
        "upstream_model": "m",
        "stream": True,
        **kw,
    }
    return UsageRecord(**fields)  # type: ignore[arg-type]


def test_money_is_exact_decimal_text() -> None:
    assert price_per_token(30_200_000) == "0.0000000302"  # $0.0302 per 1M tokens
    assert price_per_token(0) == "0"
    assert effective_price(1_000, 3) == "0.000000" + "3" * 18  # 18 significant digits
    assert effective_price(5, 0) is None
    assert iso_time(1_767_225_600_000_001) == "2026-01-01T00:00:00.000001Z"


def test_the_words_of_a_receipt() -> None:
    running = record(outcome="in_progress", cost=5)
    assert (status_of(running), cost_status_of(running)) == ("pending", "pending")
    waived = record(outcome="ok", cost=0, in_spec=False, spec_note="slow")
    assert (status_of(waived), cost_status_of(waived)) == ("reconciled", "waived")
    failed = record(outcome="upstream_error", cost=0, status=502)
    assert (status_of(failed), cost_status_of(failed)) == ("error", "cancelled")
    partial = record(outcome="stream_error", cost=7)
    assert (status_of(partial), cost_status_of(partial)) == ("error", "reconciled")
    shown = receipt_json(
        record(
            input_tokens=10,
            output_tokens=20,
            cost=9,
            price_input_per_m=100_000_000,
            price_output_per_m=400_000_000,
            ttft_us=1_500,
            generation_us=2_000_000,
            duration_us=2_001_500,
        )
    )
    assert shown["cost"]["amount"] == "0.000000009"
    assert shown["cost"]["reconciled_at"] == "2026-01-01T00:00:02.001501Z"
    assert shown["timing"] == {"ttft_ms": 1.5, "tokens_per_second": 10.0, "duration_ms": 2001.5}
    assert shown["cost"]["breakdown"][0]["subtotal"] == "0.000000009"
    assert "breakdown" not in receipt_json(record(), with_breakdown=False)["cost"]
    assert receipt_json(running)["cost"]["reconciled_at"] is None


def test_more_buckets_than_the_bound_is_a_400_naming_group_by() -> None:
    def rows(n: int) -> list[SummaryRow]:
        return [
            SummaryRow(
                bucket=f"key_{i}",
                cost_status="reconciled",
                requests=1,
                input_tokens=1,
                output_tokens=1,
                cost=i,
            )
            for i in range(n)
        ]

    assert len(_buckets(rows(MAX_BUCKETS), "api_key")) == MAX_BUCKETS
    assert _buckets(rows(3), "api_key")[0]["key"] == "key_2"  # the most spent first
    with pytest.raises(BadRequest) as refused:
        _buckets(rows(MAX_BUCKETS + 1), "api_key")
    assert refused.value.param == "group_by"
