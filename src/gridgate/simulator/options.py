"""How one simulated supplier behaves: its timing, models, credential and identity."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorOptions:
    """Settings of one simulator instance; every field has a usable default.

    - ``ttft_ms``: time to first token, in milliseconds.
    - ``tokens_per_second``: pace of the tokens after the first; ``0`` = as fast as possible.
    - ``default_max_tokens``: the natural length (in tokens) of a text answer when the
      request does not cut it shorter with ``max_completion_tokens`` / ``max_tokens``.
    - ``models``: the only model names served (others get 404); ``None`` = any name.
    - ``api_key``: when set, requests must carry ``Authorization: Bearer <api_key>`` (on
      ``/v1/messages`` also accepted as ``x-api-key: <api_key>``, Anthropic's header).
    - ``realtime``: ``False`` skips every delay (timing and ``hang`` faults with ``seconds``).
    - ``seed_salt``: mixed into every text seed, so two simulators can answer differently.
    - ``name``: shows up in ``system_fingerprint`` and ``owned_by``; with ``seed_salt`` it
      keys the signatures of ``thinking`` blocks (:mod:`.signature`).
    """

    ttft_ms: float = 0.0
    tokens_per_second: float = 0.0
    default_max_tokens: int = 64
    models: tuple[str, ...] | None = None
    api_key: str | None = None
    realtime: bool = True
    seed_salt: str = ""
    name: str = "sim"

    def __post_init__(self) -> None:
        if self.ttft_ms < 0:
            raise ValueError("ttft_ms must be >= 0")
        if self.tokens_per_second < 0:
            raise ValueError("tokens_per_second must be >= 0")
        if self.default_max_tokens < 1:
            raise ValueError("default_max_tokens must be >= 1")
        if self.models is not None and not isinstance(self.models, tuple):
            # Accept any iterable of names (a list from a config file), keep it immutable.
            object.__setattr__(self, "models", tuple(self.models))
