"""Wire schemas and pure translations, no I/O: the OpenAI chat request and stream bytes, the
Anthropic Messages surface (``anthropic/``), SSE framing, prompt size.
"""
