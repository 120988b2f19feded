"""The OpenAI Responses surface (``POST /v1/responses``): its request schema and its pure
translations to and from the canonical form (OpenAI chat completions plus gridgate's extensions).

    items.py      the input items (messages, function calls and outputs, reasoning) and parts
    request.py    ``ResponsesRequest`` and ``decode_responses_request``: the schema, decoding
                  and validation; text format, reasoning
    tools.py      function tools, namespace groups, hosted tools, and ``tool_choice``
    to_chat.py    ``to_chat_request``: a Responses request → the canonical ``ChatRequest``,
                  with what the canonical form does not hold returned beside it
    output.py     the ``Response`` object and its output items (write side), and the request
                  parameters it echoes
    from_chat.py  a canonical ``chat.completion`` → a ``Response`` (``response_from_completion``)
    stream.py     a canonical stream → the Responses event stream (``ResponseStreamEncoder``)
"""
