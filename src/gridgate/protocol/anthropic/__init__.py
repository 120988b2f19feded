"""The Anthropic Messages surface (``POST /v1/messages``): its request schema and its two pure
translations to and from the canonical form (OpenAI chat completions plus gridgate's extensions).

    content.py    messages, content blocks and the sources of images and documents
    request.py    ``MessagesRequest`` and ``decode_messages_request``: the schema, decoding and
                  validation (re-exports ``content``)
    to_chat.py    ``to_chat_request``: a Messages request → the canonical ``ChatRequest``
    from_chat.py  a canonical answer → a Messages ``message`` (``message_from_completion``) or
                  its event stream (``MessageStreamEncoder``)

The Anthropic *supplier* (gridgate calling an Anthropic-format upstream) is elsewhere:
``providers/anthropic/``.
"""
