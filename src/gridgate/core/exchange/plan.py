"""Planning a request: resolve its instrument, check the request against the instrument's
limits, and choose the offers that may serve it, in failover order (``routing.rank``).

Pure and I/O free: a bad request is refused here, before anything is admitted, held or sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import msgspec

from gridgate.core.catalog.catalog import Catalog, PricedOffer
from gridgate.core.exchange.costly_options import keeping_data, refuse_unpriced
from gridgate.core.exchange.preferences import DroppedFields, Figures, Preferences, no_figures
from gridgate.core.exchange.routing import Needs, rank
from gridgate.echo import capped
from gridgate.errors import PromptTooLong, UnknownInstrument, ValidationFailed
from gridgate.protocol.openai_chat import ChatRequest
from gridgate.protocol.tokens import measure_prompt
from gridgate.storage.records import Capability, InstrumentRecord


@dataclass(frozen=True, slots=True)
class Plan:
    instrument: InstrumentRecord
    candidates: list[PricedOffer]  # in failover order, before offer health is asked
    prompt_bound: int
    prompt_estimate: int
    prompt_charge: int  # what the prompt is charged when no supplier counted it
    requested_max: int | None
    n: int


class Planner:
    def __init__(
        self,
        catalog: Callable[[], Catalog],
        dropped_fields: Mapping[str, DroppedFields] | None = None,
        figures: Figures = no_figures,
    ) -> None:
        self._catalog = catalog
        # per wire format, what of a request it would drop (``provider.require_parameters``)
        self._dropped_fields: Mapping[str, DroppedFields] = dropped_fields or {}
        self._figures = figures  # measured offer figures (``provider.sort``)

    def plan(self, request: ChatRequest) -> Plan:
        """Resolve the instrument, check its limits and rank the offers. Pure, no I/O."""
        catalog = self._catalog()
        instrument = catalog.instrument(request.model)
        if instrument is None:
            raise UnknownInstrument(
                f"model {capped(request.model)!r} is not an instrument of this exchange; "
                "GET /v1/models lists them",
                param="model",
            )
        refuse_unpriced(request)
        requested = request.effective_max_tokens
        size = measure_prompt(request)
        check_instrument_limits(request, instrument, requested, size.estimate)
        needs = Needs(
            capabilities=capabilities_needed(request),
            prompt_tokens=size.estimate,
            max_output_tokens=requested,
            n=request.n_choices,
        )
        preferences = Preferences.of(request, self._dropped_fields)  # None: no ``provider``
        offers = keeping_data(request, instrument, catalog.offers_for(instrument.id))
        return Plan(
            instrument=instrument,
            candidates=rank(instrument, offers, needs, preferences, self._figures),
            prompt_bound=size.upper_bound,
            prompt_estimate=size.estimate,
            prompt_charge=size.charge,
            requested_max=requested,
            n=request.n_choices,
        )


def check_instrument_limits(
    request: ChatRequest, instrument: InstrumentRecord, requested: int | None, estimate: int
) -> None:
    """Refuse (422) a request the instrument cannot take: too much output asked for, a prompt
    over its input limit, images it does not accept, a reasoning effort it does not offer."""
    if requested is not None and requested > instrument.max_completion_tokens:
        field_name = (
            "max_completion_tokens"
            if request.max_completion_tokens not in (None, msgspec.UNSET)
            else "max_tokens"
        )
        raise ValidationFailed(
            f"{field_name}: at most {instrument.max_completion_tokens} for instrument "
            f"{instrument.id!r} (got {requested})",
            param=field_name,
        )
    if estimate > instrument.max_input_tokens:
        raise PromptTooLong(
            f"messages: the prompt is about {estimate} tokens; instrument {instrument.id!r} "
            f"accepts at most {instrument.max_input_tokens} input tokens",
            tokens=estimate,
            maximum=instrument.max_input_tokens,
            param="messages",
        )
    if request.has_image_input and not instrument.image_input:
        raise ValidationFailed(
            f"messages: instrument {instrument.id!r} does not accept image input",
            param="messages",
        )
    effort = request.reasoning_effort
    if (
        isinstance(effort, str)
        and instrument.reasoning_efforts
        and effort not in instrument.reasoning_efforts
    ):
        raise ValidationFailed(
            f"reasoning_effort: instrument {instrument.id!r} supports "
            f"{', '.join(instrument.reasoning_efforts)} (got {effort!r})",
            param="reasoning_effort",
        )


def capabilities_needed(request: ChatRequest) -> frozenset[Capability]:
    """What an offer must support to serve ``request``."""
    caps: set[Capability] = set()
    if request.wants_tools:
        caps.add("tools")
    if request.wants_json_schema:
        caps.add("json_schema")
    if request.has_image_input:
        caps.add("vision")
    if request.logprobs is True:
        caps.add("logprobs")
    return frozenset(caps)
