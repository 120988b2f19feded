"""What gridgate has measured of one offer: the figures routing sorts by and the status shows.

Built by the offer-health book from real deliveries; read by routing (``sort: latency`` /
``throughput`` preferences) and by ``gridgate offers status``. ``None`` = not measured yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OfferState = Literal["healthy", "ejected", "probation"]


@dataclass(frozen=True, slots=True)
class OfferFigures:
    offer_id: str
    samples: int  # deliveries in the window
    ttft_p50_ms: float | None
    ttft_p90_ms: float | None
    throughput_p50_tps: float | None  # output tokens/s after the first token
    throughput_p10_tps: float | None
    error_rate: float  # failed deliveries / deliveries (timeouts included)
    timeout_rate: float
    in_spec_fraction: float | None  # deliveries within the instrument's spec / deliveries
    state: OfferState = "healthy"
    reason: str | None = None  # why it is ejected or on probation
