"""The Anthropic Messages wire format: Anthropic's API and servers that speak it.

Core speaks the canonical form (OpenAI chat completions plus the extensions documented in
``protocol/openai_chat.py``). This adapter maps a ``ChatRequest`` to an Anthropic ``/messages``
body, and the answer — a ``message`` or its event stream — back to a canonical
``chat.completion`` body or ``chat.completion.chunk`` events, metered. The mapping tables are the
contract's (issue 5): stop reasons, usage, tool choice, tools, thinking budget, messages,
images, files, response_format as a forced tool.

    wire.py          the Anthropic request gridgate sends and the answer it reads (msgspec structs)
    request.py       ``map_request``: what each canonical field becomes (the decision table)
    conversation.py  ``map_messages``: the messages → ``system`` and user/assistant turns
    answer.py        ``map_response``: a ``message`` → a ``chat.completion``; usage, finish reason
    stream.py        ``StreamTranslator``: the event stream → ``chat.completion.chunk`` events
    adapter.py       ``AnthropicAdapter`` (``complete()``, ``stream()``) and ``upstream_error``
"""

from gridgate.providers.anthropic.adapter import AnthropicAdapter, upstream_error
from gridgate.providers.anthropic.answer import FINISH_REASON, map_response
from gridgate.providers.anthropic.request import (
    EFFORT_BUDGET,
    JSON_OBJECT_TOOL,
    JSON_TOOL_DESCRIPTION,
    dropped_fields,
    json_tool_name,
    map_request,
)
from gridgate.providers.anthropic.stream import StreamTranslator
from gridgate.providers.anthropic.wire import ANTHROPIC_VERSION, MIN_THINKING_BUDGET

__all__ = [
    "ANTHROPIC_VERSION",
    "EFFORT_BUDGET",
    "FINISH_REASON",
    "JSON_OBJECT_TOOL",
    "JSON_TOOL_DESCRIPTION",
    "MIN_THINKING_BUDGET",
    "AnthropicAdapter",
    "StreamTranslator",
    "dropped_fields",
    "json_tool_name",
    "map_request",
    "map_response",
    "upstream_error",
]
