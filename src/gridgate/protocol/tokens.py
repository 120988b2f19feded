"""Prompt size without a tokenizer: a strict upper bound for holds, a realistic estimate for routing.

gridgate does not tokenize (it routes to many upstream models, each with its own tokenizer). It
needs two numbers for a prompt before dispatch:

``prompt_token_upper_bound`` (for the billing hold) must never be below what an upstream bills.
Every BPE / byte-fallback tokenizer (tiktoken, Llama 3, SentencePiece with byte fallback) emits
tokens that each cover at least one UTF-8 byte of the text, so a text's **UTF-8 byte length is
≥ its token count**. The bound is therefore:

    PROMPT_BASE_TOKENS
    + MESSAGE_OVERHEAD_TOKENS per message          (role markers, separators of a chat template)
    + CONTENT_PART_OVERHEAD_TOKENS per content part (separators between parts)
    + UTF-8 bytes of every text the model reads: string content, text and refusal parts, message
      names, refusals, tool call ids / names / arguments, tool_call_id of tool messages, the
      text of earlier reasoning blocks sent back (``thinking_blocks``)
    + MESSAGE_OVERHEAD_TOKENS per tool call of an assistant message
    + per tool: TOOL_OVERHEAD_TOKENS + bytes of the tool definition encoded as JSON,
      and once TOOLS_PREAMBLE_TOKENS if there are tools (Anthropic-style tool-use system prompt)
    + for a json_schema response_format: bytes of ``json_schema`` encoded as JSON
    + media: IMAGE_PART_TOKENS per image; per audio part the larger of AUDIO_PART_TOKENS and
      base64 length / AUDIO_BASE64_BYTES_PER_TOKEN; per file part FILE_PART_TOKENS plus the
      decoded byte length of ``file_data`` (nothing more for a ``file_id``: its size is unknown);
      AUDIO_PART_TOKENS for an assistant message's reference to an earlier audio answer.

The text part is a proof; the overheads and media constants are policy, chosen above what the
known chat templates and vision/audio tokenizers produce (documented at each constant).

``prompt_token_estimate`` (for fitting a context window and ranking offers by price) is the same
walk with text counted as ``ceil(bytes / 4)`` — about right for English with modern tokenizers,
and an overestimate for code and most other languages' ASCII — and images at
IMAGE_PART_TOKENS_ESTIMATE. It is always ≤ the upper bound.

``charge`` (for metering a prompt whose upstream reported no count) is only the text part of the
estimate, ``ceil(bytes / 4)``: no fixed overheads, no media. A caller is never charged for more
prompt than was really sent; holds keep the upper bound. It is ≤ the estimate ≤ the upper bound.

``count_text_tokens_estimate`` is ``ceil(bytes / 4)`` for metering an answer whose upstream
reported no usage.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import msgspec

from gridgate.protocol.openai_chat import (
    AssistantMessage,
    AudioPart,
    ChatRequest,
    FilePart,
    ImagePart,
    JSONSchemaFormat,
    RefusalPart,
    ResponseFormatJSONSchema,
    TextPart,
    ThinkingBlock,
    Tool,
    ToolMessage,
)

__all__ = [
    "AUDIO_BASE64_BYTES_PER_TOKEN",
    "AUDIO_PART_TOKENS",
    "BYTES_PER_TOKEN_ESTIMATE",
    "CONTENT_PART_OVERHEAD_TOKENS",
    "FILE_PART_TOKENS",
    "IMAGE_PART_TOKENS",
    "IMAGE_PART_TOKENS_ESTIMATE",
    "MESSAGE_OVERHEAD_TOKENS",
    "PROMPT_BASE_TOKENS",
    "TOOLS_PREAMBLE_TOKENS",
    "TOOL_OVERHEAD_TOKENS",
    "PromptSize",
    "count_text_tokens_estimate",
    "measure_prompt",
    "prompt_token_estimate",
    "prompt_token_upper_bound",
    "tokens_for_bytes",
    "utf8_length",
]

#: Fixed cost of any prompt: reply priming plus a default system preamble some chat templates
#: insert (gpt-oss "harmony" adds ~50-70 tokens of system text; OpenAI primes with 3).
PROMPT_BASE_TOKENS: Final = 128
#: Per message: role header and end markers (OpenAI ~4, Llama 3 / ChatML templates ~5).
MESSAGE_OVERHEAD_TOKENS: Final = 8
#: Per content part of an array content: a separator templates put between parts.
CONTENT_PART_OVERHEAD_TOKENS: Final = 2
#: Per tool definition, beyond its JSON bytes: the wrapper a template renders around it.
TOOL_OVERHEAD_TOKENS: Final = 16
#: Once when tools are given: Anthropic adds a tool-use system prompt of ~350 tokens.
TOOLS_PREAMBLE_TOKENS: Final = 512
#: Per image. OpenAI tile models: at most 85 + 170 × 8 = 1,445 (high detail); patch models
#: (gpt-4.1-mini class): at most 1,536 patches × 1.62 ≈ 2,489; Anthropic: ~1,600 at its largest
#: size. The data URL's bytes are not counted: an image costs its tokens, not its encoding.
IMAGE_PART_TOKENS: Final = 2_500
#: Per image for the estimate: a 1024×1024 high-detail image at OpenAI (765).
IMAGE_PART_TOKENS_ESTIMATE: Final = 765
#: Minimum per audio part.
AUDIO_PART_TOKENS: Final = 2_000
#: Audio tokens grow with duration: the lowest usual bitrate (8 kbit/s MP3) is ~1,333 base64
#: bytes per second, and known audio encoders use ≤ 32 tokens per second (Gemini 32, OpenAI ~10),
#: so 32 base64 bytes per token stays above them.
AUDIO_BASE64_BYTES_PER_TOKEN: Final = 32
#: Per file part, plus the decoded size of inline file data (a document's extracted text is not
#: longer than its bytes for plain text; PDFs carry fonts and images that pad their size). A file
#: given by ``file_id`` counts only this constant: its size is not known here.
FILE_PART_TOKENS: Final = 2_000
#: The estimate's text rate: about 4 UTF-8 bytes per token for English.
BYTES_PER_TOKEN_ESTIMATE: Final = 4


class PromptSize(NamedTuple):
    upper_bound: int  # never below what an upstream counts (see the module docstring)
    estimate: int  # realistic, for routing
    charge: int  # text only, no overheads: what a prompt is charged when nobody counted it


def utf8_length(text: str) -> int:
    """UTF-8 byte length of ``text`` (lone surrogates count 3 bytes instead of failing)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def tokens_for_bytes(size: int) -> int:
    """``ceil(utf8 bytes / 4)``: about right to slightly high for English with modern BPE
    tokenizers, high for code; how gridgate meters an answer whose upstream sent no usage."""
    return -(-size // BYTES_PER_TOKEN_ESTIMATE)


def count_text_tokens_estimate(text: str) -> int:
    """``tokens_for_bytes`` of the text's UTF-8 length."""
    return tokens_for_bytes(utf8_length(text))


def prompt_token_upper_bound(req: ChatRequest) -> int:
    """A count of prompt tokens no upstream exceeds (the method is in the module docstring)."""
    return measure_prompt(req).upper_bound


def prompt_token_estimate(req: ChatRequest) -> int:
    """A realistic prompt token count for routing decisions; always ≤ the upper bound."""
    return measure_prompt(req).estimate


def measure_prompt(req: ChatRequest) -> PromptSize:
    """Both numbers in one walk over the request."""
    text = 0  # UTF-8 bytes the model reads as text
    fixed = PROMPT_BASE_TOKENS  # overheads, the same in both numbers
    media_bound = 0
    media_estimate = 0

    for message in req.messages:
        fixed += MESSAGE_OVERHEAD_TOKENS
        content = message.content
        if isinstance(content, str):
            text += utf8_length(content)
        elif isinstance(content, list):
            fixed += CONTENT_PART_OVERHEAD_TOKENS * len(content)
            for part in content:
                if isinstance(part, TextPart):
                    text += utf8_length(part.text)
                elif isinstance(part, ImagePart):
                    media_bound += IMAGE_PART_TOKENS
                    media_estimate += IMAGE_PART_TOKENS_ESTIMATE
                elif isinstance(part, AudioPart):
                    tokens = _audio_tokens(part)
                    media_bound += tokens
                    media_estimate += tokens
                elif isinstance(part, FilePart):
                    tokens = _file_tokens(part)
                    media_bound += tokens
                    media_estimate += tokens
                elif isinstance(part, RefusalPart):
                    text += utf8_length(part.refusal)
        name = getattr(message, "name", None)
        if isinstance(name, str):
            text += utf8_length(name)
        if isinstance(message, AssistantMessage):
            if isinstance(message.refusal, str):
                text += utf8_length(message.refusal)
            if isinstance(message.thinking_blocks, list):  # earlier reasoning sent back
                for block in message.thinking_blocks:
                    text += utf8_length(
                        block.thinking if isinstance(block, ThinkingBlock) else block.data
                    )
            if isinstance(message.audio, dict):  # an earlier audio answer, replayed upstream
                media_bound += AUDIO_PART_TOKENS
                media_estimate += AUDIO_PART_TOKENS
            if message.tool_calls:
                for call in message.tool_calls:
                    fixed += MESSAGE_OVERHEAD_TOKENS
                    text += utf8_length(call.id)
                    text += utf8_length(call.function.name)
                    text += utf8_length(call.function.arguments)
        elif isinstance(message, ToolMessage):
            text += utf8_length(message.tool_call_id)

    if req.tools:
        fixed += TOOLS_PREAMBLE_TOKENS + TOOL_OVERHEAD_TOKENS * len(req.tools)
        for tool in req.tools:
            text += _json_length(tool)

    if isinstance(req.response_format, ResponseFormatJSONSchema):
        text += _json_length(req.response_format.json_schema)

    upper_bound = fixed + text + media_bound
    charge = -(-text // BYTES_PER_TOKEN_ESTIMATE)
    estimate = fixed + charge + media_estimate
    return PromptSize(upper_bound, estimate, min(charge, estimate, upper_bound))


def _audio_tokens(part: AudioPart) -> int:
    by_size = -(-len(part.input_audio.data) // AUDIO_BASE64_BYTES_PER_TOKEN)
    return max(AUDIO_PART_TOKENS, by_size)


def _file_tokens(part: FilePart) -> int:
    data = part.file.file_data
    if not isinstance(data, str):
        return FILE_PART_TOKENS
    return FILE_PART_TOKENS + -(-len(data) * 3 // 4)  # base64: 4 characters carry 3 bytes


def _json_length(value: Tool | JSONSchemaFormat) -> int:
    """Bytes of ``value`` encoded as JSON, without failing on what msgspec cannot encode."""
    try:
        return len(msgspec.json.encode(value))
    except (msgspec.EncodeError, RecursionError, UnicodeEncodeError, TypeError, ValueError):
        return _json_length_slow(msgspec.structs.asdict(value))


def _json_length_slow(root: Any) -> int:
    """An upper estimate of the JSON length of ``root``, iterative (any nesting depth)."""
    total = 0
    stack: list[Any] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += utf8_length(item) * 2 + 2  # escapes at most double a string, plus quotes
        elif isinstance(item, dict):
            total += 2 + 2 * len(item)  # braces, colons and commas
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            stack.extend(item)
        elif isinstance(item, msgspec.Struct):
            stack.append(msgspec.structs.asdict(item))
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += 2 + (item.bit_length() * 31 + 99) // 100  # sign, and ≥ digits (log10 2 < 0.31)
        else:
            total += 32  # float or anything else a caller put in: repr is shorter than this
    return total
