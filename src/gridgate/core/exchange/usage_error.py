"""What a usage record keeps of a failure: a short, redacted summary, never the supplier's text.

A supplier's error message may echo the request (the prompt, a tool's arguments), so a
rejection by the supplier (``UpstreamRejected``) is kept as its status and kind only; the caller
got the message in its answer, the database does not need it. gridgate's own messages are kept
as their first ``SUMMARY_LIMIT`` characters, on one line, with anything that looks like a
credential (``sk-…``, a bearer token, ``key=…``, a long run of key-like characters) redacted.
"""

from __future__ import annotations

import re
from typing import Final

from gridgate.errors import GridgateError, UpstreamRejected

SUMMARY_LIMIT: Final = 160
REDACTED: Final = "[redacted]"
_SECRETS: Final = re.compile(
    r"(?i:bearer\s+\S+)"
    r"|(?i:\b(?:api[_-]?key|token|secret|password|authorization)\b\s*[:=]\s*\S+)"
    r"|\b(?:sk|pk|rk)[-_][A-Za-z0-9_-]{6,}"
    r"|[A-Za-z0-9+/_=-]{32,}"
)
_SPACE: Final = re.compile(r"\s+")


def summary(text: str | None) -> str | None:
    """``text`` on one line, credentials redacted, at most ``SUMMARY_LIMIT`` characters."""
    if text is None:
        return None
    one_line = _SPACE.sub(" ", text).strip()
    redacted = _SECRETS.sub(REDACTED, one_line)
    if len(redacted) > SUMMARY_LIMIT:
        redacted = redacted[: SUMMARY_LIMIT - 1] + "…"
    return redacted


def error_summary(error: GridgateError) -> str:
    """What a usage record keeps of ``error``."""
    if isinstance(error, UpstreamRejected):
        code = f" ({error.code})" if error.code else ""
        return (
            f"the supplier rejected the request (HTTP {error.upstream_status}, "
            f"{error.openai_type}){code}; its message is not kept"
        )
    return summary(error.message) or type(error).__name__
