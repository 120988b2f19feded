"""Everything one simulator instance keeps, built per application (no module globals)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from aiohttp import web

from gridgate.simulator.faults import FaultBoard
from gridgate.simulator.options import SimulatorOptions
from gridgate.simulator.prompt_cache import PromptCache
from gridgate.simulator.signature import ThinkingSigner
from gridgate.simulator.stats import Stats


@dataclass(slots=True)
class SimulatorState:
    options: SimulatorOptions
    stats: Stats = field(default_factory=Stats)
    faults: FaultBoard = field(default_factory=FaultBoard)
    fingerprint: str = ""
    models: frozenset[str] | None = None
    closing: bool = False
    """Set at shutdown: requests still running are being cancelled, not abandoned by clients."""
    active: set[asyncio.Task[object]] = field(default_factory=set)
    """Tasks of the requests in progress, cancelled at shutdown (hangs never end otherwise)."""
    prompt_cache: PromptCache = field(default_factory=PromptCache)
    """The Anthropic wire's prompt cache (``cache_control`` prefixes seen)."""
    signer: ThinkingSigner = field(init=False)
    """Signs the ``thinking`` blocks the Anthropic wire emits; checks the ones sent back."""

    def __post_init__(self) -> None:
        options = self.options
        digest = hashlib.blake2b(f"{options.name}\x00{options.seed_salt}".encode(), digest_size=5)
        self.fingerprint = f"fp_{digest.hexdigest()}"
        self.signer = ThinkingSigner.for_identity(options.name, options.seed_salt)
        self.models = None if options.models is None else frozenset(options.models)

    def shutdown(self) -> None:
        """Stop every request in progress (used before the runner is cleaned up)."""
        self.closing = True
        for task in list(self.active):
            task.cancel()


STATE = web.AppKey("gridgate.simulator.state", SimulatorState)
