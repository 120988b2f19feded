"""The reference exchange's text instruments with their published thresholds
(CONSUMPTION_API.md §5.2): the spec floors and ceilings, and the enforced API limits of
``/v1/models``. An operator's ``[[instruments]]`` of the same id replace one
(``catalog.records_from_settings``); ``settings.DEFAULT_INSTRUMENT_IDS`` names them for the
config's checks.
"""

from __future__ import annotations

from gridgate.settings import InstrumentSettings


def default_instruments() -> list[InstrumentSettings]:
    efforts = ["low", "medium", "high"]
    return [
        InstrumentSettings(
            id="text-standard",
            display_name="Text Standard",
            quality_floor=18,
            ttft_ceiling_ms=1320,
            throughput_floor_tps=100,
            context_floor=128_000,
            max_output_floor=16_000,
            context_length=128_000,
            max_input_tokens=120_000,
            max_completion_tokens=65_536,
            reasoning_efforts=efforts,
            default_reasoning_effort="medium",
        ),
        InstrumentSettings(
            id="text-prime",
            display_name="Text Prime",
            quality_floor=38,
            ttft_ceiling_ms=4620,
            throughput_floor_tps=40,
            context_floor=128_000,
            max_output_floor=30_000,
            context_length=196_608,
            max_input_tokens=120_000,
            max_completion_tokens=131_072,
            reasoning_efforts=efforts,
            default_reasoning_effort="medium",
        ),
        InstrumentSettings(
            id="text-max",
            display_name="Text Max",
            quality_floor=53,
            ttft_ceiling_ms=3500,
            throughput_floor_tps=30,
            context_floor=1_000_000,
            max_output_floor=128_000,
            context_length=1_000_000,
            max_input_tokens=922_000,
            max_completion_tokens=128_000,
            image_input=True,
            reasoning_efforts=["low", "medium", "high", "xhigh", "max"],
            default_reasoning_effort="medium",
        ),
    ]
