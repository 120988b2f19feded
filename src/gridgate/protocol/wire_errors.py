"""How a request body's faults read, for every surface: one decode-and-translate mechanism.

msgspec decodes and type-checks a body in one pass and says what went wrong in its own words
(``Expected `int`, got `str` - at `$.n```). ``decode`` turns that, and malformed JSON, into the
error tree: ``BadRequest`` (400) for what is not JSON or has a wrong JSON type (or is a field
a struct that forbids unknown fields does not know, in Anthropic's words), and
``ValidationFailed`` (422) for a missing field, an unknown enum value or tag, a number out of
range, and wrong types inside a surface's structured option objects. ``param`` is the field's
path (``messages[1].role``) and every message starts with it. A surface gives the accepted
values per path (to name them) and, where it wants, a better word for one of its paths.
The small renderers and range checks the surfaces' Python passes use live here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, NoReturn, TypeVar, get_args

import msgspec

from gridgate.errors import BadRequest, GridgateError, ValidationFailed

T = TypeVar("T")

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

_AT: Final = " - at `"
_MISSING_RE: Final = re.compile(r"Object missing required field `([^`]+)`")
_UNKNOWN_RE: Final = re.compile(r"Object contains unknown field `([^`]+)`")
_EXPECTED_RE: Final = re.compile(r"Expected `([^`]+)`(?:, got `([^`]+)`)?")
_INVALID_RE: Final = re.compile(r"Invalid (?:enum )?value (.*)", re.DOTALL)
_INDEX_RE: Final = re.compile(r"\[\d+\]")
_JSON_TYPES: Final = MappingProxyType(
    {
        "int": "an integer",
        "float": "a number",
        "decimal": "a number",
        "str": "a string",
        "bool": "a boolean",
        "object": "an object",
        "array": "an array",
        "null": "null",
    }
)


def _no_word(_key: str, _shown: str) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class Surface:
    """What differs between surfaces when their faults are put into words."""

    # accepted values by path, indices replaced by ``[]`` (``messages[].role``)
    choices_for: Callable[[str], tuple[str, ...] | None]
    # paths inside structured option objects, where a wrong type is 422, not 400
    structured: re.Pattern[str]
    # a surface's own words for a missing field at a path (the parenthesis after "is required")
    missing_hint: Callable[[str], str | None] = lambda _key: None
    # a surface's own words for an invalid value (``shown``) at a path, instead of the choices
    invalid_word: Callable[[str, str], str | None] = _no_word


def decode(decoder: msgspec.json.Decoder[T], body: bytes, surface: Surface) -> T:
    """Decode ``body``; raise only BadRequest / ValidationFailed."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise translate(str(exc), surface) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(
            f"request body is not valid JSON: {_json_problem(str(exc))}", code="invalid_json"
        ) from None
    except UnicodeDecodeError:
        raise BadRequest(
            "request body is not valid JSON: it is not valid UTF-8", code="invalid_json"
        ) from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply", code="invalid_json") from None


def translate(text: str, surface: Surface) -> GridgateError:
    """One msgspec validation message as an error of the tree."""
    path = "$"
    if text.endswith("`") and _AT in text:
        text, _, path = text.rpartition(_AT)
        path = path[:-1]
    param = path[2:] if path.startswith("$.") else path[1:]
    param = param.replace("[...]", "")  # a value in a map: name the map

    unknown = _UNKNOWN_RE.fullmatch(text)
    if unknown:  # only a struct that forbids unknown fields says so: Anthropic's words for it
        field = f"{param}.{unknown.group(1)}" if param else unknown.group(1)
        return BadRequest(f"{field}: Extra inputs are not permitted", param=field)

    if not param:
        if text.startswith("Expected `object`"):
            match = _EXPECTED_RE.fullmatch(text)
            got = match.group(2) if match else None
            what = _JSON_TYPES.get(got, "something else") if got else "something else"
            return BadRequest(f"request body must be a JSON object (got {what})")
        missing = _MISSING_RE.fullmatch(text)
        if missing:
            field = missing.group(1)
            return ValidationFailed(f"{field}: is required", param=field)
        return BadRequest("request body is invalid")

    missing = _MISSING_RE.fullmatch(text)
    if missing:
        field = f"{param}.{missing.group(1)}"
        key = _INDEX_RE.sub("[]", field)
        hint = surface.missing_hint(key)
        if hint is None:
            choices = surface.choices_for(key)
            hint = f"one of {choices_text(choices)}" if choices and len(choices) > 1 else None
        extra = f" ({hint})" if hint else ""
        return ValidationFailed(f"{field}: is required{extra}", param=field)

    expected = _EXPECTED_RE.fullmatch(text)
    if expected:
        want = " or ".join(_JSON_TYPES.get(t, t) for t in expected.group(1).split(" | "))
        got = expected.group(2)
        problem = f"expected {want}" + (f", got {_JSON_TYPES.get(got, got)}" if got else "")
        error = ValidationFailed if surface.structured.match(param) else BadRequest
        return error(f"{param}: {problem}", param=param)

    invalid = _INVALID_RE.fullmatch(text)
    if invalid:
        shown = clip(invalid.group(1))
        key = _INDEX_RE.sub("[]", param)
        word = surface.invalid_word(key, shown)
        if word is None:
            choices = surface.choices_for(key)
            if choices and len(choices) == 1:
                word = f"must be {choices_text(choices)} (got {shown})"
            elif choices:
                word = f"must be one of {choices_text(choices)} (got {shown})"
            else:
                word = f"invalid value {shown}"
        return ValidationFailed(f"{param}: {word}", param=param)

    if text in ("Number out of range", "Integer value out of range"):
        return ValidationFailed(f"{param}: number out of range", param=param)
    if text == "Invalid decimal string":  # a price of ``provider.max_price``
        return ValidationFailed(f"{param}: must be a number (got a string)", param=param)
    return BadRequest(f"{param}: invalid value", param=param)


# -- for the surfaces' Python passes -------------------------------------------------------------


def fail(param: str, problem: str) -> NoReturn:
    raise ValidationFailed(f"{param}: {problem}", param=param)


def check_range(value: float | Any, param: str, lo: int, hi: int) -> None:
    """A number given must lie in [lo, hi] (anything else — UNSET, None — passes)."""
    if isinstance(value, float | int) and not lo <= value <= hi:
        fail(param, f"must be between {lo} and {hi} (got {show(value)})")


def check_int_range(value: int | Any, param: str, lo: int, hi: int = INT64_MAX) -> None:
    """An integer given must lie in [lo, hi]; bounds at the 64-bit limits read as such."""
    if not isinstance(value, int) or lo <= value <= hi:
        return
    if lo == INT64_MIN:
        problem = "must be a 64-bit signed integer"
    elif value < lo and hi == INT64_MAX:
        problem = f"must be at least {lo}"
    elif value > hi and hi == INT64_MAX:
        problem = "must be a 64-bit signed integer"
    else:
        problem = f"must be between {lo} and {hi}"
    fail(param, f"{problem} (got {show(value)})")


_NAME_RE: Final = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def check_name(name: str, param: str) -> None:
    """A tool or schema name: 1 to 64 of a-z, A-Z, 0-9, '_' or '-'."""
    if _NAME_RE.fullmatch(name) is None:
        fail(
            param,
            f"must be 1 to 64 characters of a-z, A-Z, 0-9, '_' or '-' (got {show(name)})",
        )


def tags(union: Any) -> tuple[str, ...]:
    """The ``type`` tags of a union of tagged structs, in order."""
    return tuple(str(member.__struct_config__.tag) for member in get_args(union))


def choices_text(values: Any) -> str:
    return ", ".join(f"'{v}'" for v in values)


def clip(text: str, limit: int = 64) -> str:
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def show(value: object) -> str:
    """A short, safe rendering of a client value for an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else "a very large integer"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return clip(repr(value))
    return "a value of another type"


def _json_problem(text: str) -> str:
    if text.startswith("JSON is malformed: "):
        return clip(text.removeprefix("JSON is malformed: "))
    if text == "Input data was truncated":
        return "unexpected end of input"
    return "malformed input"
