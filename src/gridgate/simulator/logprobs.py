"""Deterministic log probabilities for generated tokens (every value is <= 0).

The chosen token's logprob is drawn from a PRNG of its own (so asking for logprobs never
changes the text); ``top_logprobs`` lists the chosen token first, then vocabulary words with
strictly lower logprobs.
"""

from __future__ import annotations

import random
from typing import Any

from gridgate.simulator.text import VOCABULARY


def token_logprobs(rng: random.Random, tokens: list[str], top: int) -> list[dict[str, Any]]:
    """One ``ChatCompletionTokenLogprob`` object per token."""
    entries: list[dict[str, Any]] = []
    for token in tokens:
        logprob = -round(rng.random() * 1.5, 6)
        alternatives: list[dict[str, Any]] = []
        if top:
            alternatives.append({"token": token, "logprob": logprob, "bytes": list(token.encode())})
            current = logprob
            lead = " " if token.startswith(" ") else ""
            for word in rng.sample(VOCABULARY, top - 1):
                current = round(current - 0.25 - rng.random() * 2, 6)
                other = lead + word
                alternatives.append(
                    {"token": other, "logprob": current, "bytes": list(other.encode())}
                )
        entries.append(
            {
                "token": token,
                "logprob": logprob,
                "bytes": list(token.encode()),
                "top_logprobs": alternatives,
            }
        )
    return entries
