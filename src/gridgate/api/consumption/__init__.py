"""The Consumption API a developer's client speaks: ``POST /v1/chat/completions`` (OpenAI),
``POST /v1/messages`` (Anthropic), ``POST /v1/responses`` (OpenAI's Responses API), ``GET /v1/models`` and ``GET /v1/offers/status``. Thin
handlers: authenticate, decode, hand to ``core/exchange``, relay.
"""
