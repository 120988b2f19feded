"""The OpenAI Responses wire format (``wire = "openai-responses"``): upstreams that speak
OpenAI's Responses API natively (``POST {base_url}/responses``), such as OpenAI itself for
models served only there, or open-weight servers with a Responses endpoint.

Core speaks the canonical form (OpenAI chat completions plus the extensions documented in
``protocol/openai_chat.py``). This adapter maps a ``ChatRequest`` to a Responses request —
always ``store: false`` (gridgate stores, never the supplier) and
``include: ["reasoning.encrypted_content"]`` — and the answer, a ``Response`` or its event
stream, back to a canonical ``chat.completion`` body or ``chat.completion.chunk`` events,
metered from the response's usage.

    request.py    ``map_request``: what each canonical field becomes (the decision table)
    reasoning.py  a reasoning item sealed in a canonical thinking block's signature
    answer.py     ``map_response``: a ``Response`` → a ``chat.completion``; usage, finish reason
    stream.py     ``StreamTranslator``: the event stream → ``chat.completion.chunk`` events
    adapter.py    ``OpenAIResponsesAdapter`` (``complete()``, ``stream()``)

What round-trips, and what does not:

- Reasoning items: losslessly. The item (``id``, ``summary``, ``content``,
  ``encrypted_content``) rides in a canonical ``thinking_blocks`` entry's signature
  (``oair1.`` + base64url JSON); its summary is ``reasoning_content``. A caller that sends the
  assistant turn back with its thinking blocks (the Chat surface's ``thinking_blocks``, the
  Messages surface's ``thinking`` block and signature, the Responses surface's
  ``encrypted_content``, which seals the blocks) gives the supplier its own item back. Without
  the blocks (only ``reasoning_content``), earlier reasoning is dropped: the supplier could not
  read it. Blocks of another wire (Anthropic signatures) are dropped for the same reason. A
  sealed item goes to whichever Responses-API supplier serves the next turn: one that cannot
  read another's encrypted content refuses it, as Anthropic refuses another key's signature.
- Function calls: ``call_id``, name and arguments round-trip; the supplier's item ids
  (``fc_…``, ``msg_…``) do not (the canonical form has no place for them; with ``store:
  false`` they are not needed).
- Assistant text goes back as an input message (text only; refusals as text), annotations and
  output-text logprobs are not carried.
- Max tokens: the held max is sent as ``max_output_tokens`` as it is. OpenAI itself refuses
  values under 16 (its 400 reaches the caller); other servers of the wire take any.
- Not carried (Untranslatable, the next offer may serve): ``n > 1``, ``stop``, logprobs,
  ``logit_bias``, audio in or out, ``web_search_options``. Dropped: ``seed``, penalties,
  ``top_k``, ``prediction``, cache breakpoints (caching is automatic), message names.
"""

from gridgate.providers.openai_responses.adapter import OpenAIResponsesAdapter
from gridgate.providers.openai_responses.answer import map_response
from gridgate.providers.openai_responses.reasoning import SIGNATURE_PREFIX, open_item, seal_item
from gridgate.providers.openai_responses.request import dropped_fields, map_input, map_request
from gridgate.providers.openai_responses.stream import StreamTranslator

__all__ = [
    "SIGNATURE_PREFIX",
    "OpenAIResponsesAdapter",
    "StreamTranslator",
    "dropped_fields",
    "map_input",
    "map_request",
    "map_response",
    "open_item",
    "seal_item",
]
