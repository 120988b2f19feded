"""The ``CatalogStore`` contract's seeding, run against SQLite and PostgreSQL (see conftest.py);
an operator's edits are in ``test_managed_catalog.py``."""

from __future__ import annotations

from gridgate.storage.records import InstrumentRecord, OfferRecord, SupplierRecord
from gridgate.storage.sql import SqlStore

# -- catalog ----------------------------------------------------------------------------------


async def test_catalog_upsert_and_load_round_trip(store: SqlStore) -> None:
    assert await store.load_catalog() == ([], [], [])
    prime = InstrumentRecord(
        id="text-prime",
        display_name="Text Prime",
        quality_floor=0.1 + 0.2,  # not representable in decimal: must round-trip bit-exact
        ttft_ceiling_ms=1_500,
        throughput_floor_tps=33.333333333333336,
        context_floor=128_000,
        max_output_floor=8_192,
        context_length=131_072,
        max_input_tokens=120_000,
        max_completion_tokens=16_384,
        image_input=True,
        reasoning_efforts=("low", "medium", "high"),
        default_reasoning_effort="medium",
        bill_out_of_spec=True,
    )
    lite = InstrumentRecord(
        id="text-lite",
        display_name='Text Lite, "quoted"',
        quality_floor=0.0,
        ttft_ceiling_ms=None,
        throughput_floor_tps=None,
        context_floor=8_000,
        max_output_floor=1_000,
        context_length=8_192,
        max_input_tokens=7_000,
        max_completion_tokens=1_024,
        enabled=False,
    )
    sup_a = SupplierRecord(name="sim-a", wire="openai", base_url="http://127.0.0.1:9/v1")
    sup_b = SupplierRecord(
        name="sim-b",
        wire="anthropic",
        base_url="http://x",
        api_key_env="SIM_B_KEY",
        zero_retention=False,
        enabled=False,
    )
    offer_1 = OfferRecord(
        id="sim-a/text-prime",
        supplier="sim-a",
        instrument="text-prime",
        model="sim-large",
        input_per_m=30_200_000,
        output_per_m=2**53 + 1,
        quality=0.875,
        context=131_072,
        max_output=16_384,
        capabilities=("tools", "json_schema", "vision", "logprobs"),
    )
    offer_2 = OfferRecord(
        id="sim-b/text-lite",
        supplier="sim-b",
        instrument="text-lite",
        model="sim-small",
        input_per_m=0,
        output_per_m=1,
        quality=1e-300,
        context=8_192,
        max_output=1_024,
        enabled=False,
    )
    await store.upsert_catalog([prime, lite], [sup_b, sup_a], [offer_2, offer_1])
    assert await store.load_catalog() == ([lite, prime], [sup_a, sup_b], [offer_1, offer_2])

    cheaper = OfferRecord(
        id="sim-a/text-prime",
        supplier="sim-a",
        instrument="text-prime",
        model="sim-large-2",
        input_per_m=1,
        output_per_m=2,
        quality=0.5,
        context=1,
        max_output=1,
        capabilities=(),
        enabled=False,
    )
    prime_off = InstrumentRecord(
        **{
            **{f: getattr(prime, f) for f in prime.__struct_fields__},
            "enabled": False,
            "reasoning_efforts": (),
            "bill_out_of_spec": False,
        },
    )
    await store.upsert_catalog([prime_off], [], [cheaper])
    instruments, suppliers, offers = await store.load_catalog()
    assert instruments == [lite, prime_off]
    assert suppliers == [sup_a, sup_b]
    assert offers == [cheaper, offer_2]
