"""A deterministic instance of a JSON Schema: what a model answers under structured outputs.

``schema_instance(schema, seed=...)`` walks the schema and builds a value that validates
against it (the same schema and seed give the same value). Covered:

- ``type`` (one name or a list; ``null`` is chosen only when nothing else is allowed or the
  generator is deep in a recursive schema), ``const``, ``enum``;
- objects: ``properties``, ``required``, ``additionalProperties``, ``patternProperties``,
  ``minProperties`` / ``maxProperties``, ``dependentRequired``; every declared property is
  filled (optional ones too, while ``maxProperties`` allows);
- arrays: ``items``, ``prefixItems`` (and draft-4 tuple ``items``), ``minItems`` / ``maxItems``,
  ``contains``, ``uniqueItems``;
- strings: ``minLength`` / ``maxLength``, ``format`` (date, date-time, time, email, uuid,
  uri, hostname, ipv4, ipv6, duration …), ``pattern`` (best effort, see :mod:`.pattern`);
- numbers and integers: ``minimum`` / ``maximum``, ``exclusiveMinimum`` / ``exclusiveMaximum``
  (numbers, or draft-4 booleans), ``multipleOf``;
- ``allOf`` (merged), ``anyOf`` / ``oneOf`` (one branch, merged with sibling keywords),
  ``$ref`` to any JSON pointer in the document (``#/$defs/…``, ``#/definitions/…``, ``#``),
  recursion (past a depth the generator builds the smallest instance it can).

``not``, ``if``/``then``/``else`` and ``dependentSchemas`` are ignored; a ``oneOf`` whose branches
overlap may yield an instance matching several. Unsatisfiable schemas (``false``, empty type
intersections, an unresolvable ``$ref``) raise :class:`SchemaInstanceError`.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any, TypeGuard
from urllib.parse import unquote

import msgspec

from gridgate.simulator.pattern import pattern_example
from gridgate.simulator.text import VOCABULARY, phrase

_DEEP = 6
"""Nesting depth after which the generator goes minimal (required only, fewest items)."""
_MAX_REF_HOPS = 64
_MAX_UNIQUE_TRIES = 12
_DEFAULT_SPAN = 100

Schema = Mapping[str, Any]


class SchemaInstanceError(ValueError):
    """The schema has no instance the generator can build."""


def schema_instance(schema: object, *, seed: int = 0) -> Any:
    """A value valid against ``schema`` (a JSON Schema document, as decoded JSON)."""
    return _Generator(schema, random.Random(seed)).instance(schema, 0)


def _date(rng: random.Random) -> str:
    return f"20{rng.randint(10, 29)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


def _word(rng: random.Random) -> str:
    return rng.choice(VOCABULARY)


_FORMATS: Mapping[str, Callable[[random.Random], str]] = {
    "date": _date,
    "time": _time,
    "date-time": lambda rng: f"{_date(rng)}T{_time(rng)}",
    "email": lambda rng: f"{_word(rng)}.{_word(rng)}@example.com",
    "idn-email": lambda rng: f"{_word(rng)}@example.com",
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "uri": lambda rng: f"https://example.com/{_word(rng)}",
    "url": lambda rng: f"https://example.com/{_word(rng)}",
    "iri": lambda rng: f"https://example.com/{_word(rng)}",
    "uri-reference": lambda rng: f"/{_word(rng)}",
    "iri-reference": lambda rng: f"/{_word(rng)}",
    "hostname": lambda rng: f"{_word(rng)}.example.com",
    "idn-hostname": lambda rng: f"{_word(rng)}.example.com",
    "ipv4": lambda rng: f"192.0.2.{rng.randint(1, 254)}",
    "ipv6": lambda rng: f"2001:db8::{rng.randint(1, 0xFFFF):x}",
    "duration": lambda rng: f"P{rng.randint(1, 30)}D",
    "json-pointer": lambda rng: f"/{_word(rng)}",
    "relative-json-pointer": lambda rng: "0",
    "regex": lambda rng: "^[a-z]+$",
}

_LOWER_BOUNDS = ("minimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "maxLength", "maxItems", "maxProperties")


def _merge(first: Schema, second: Schema) -> dict[str, Any]:
    """One schema asking for both (the ``allOf`` of two flattened schemas), best effort."""
    merged = dict(first)
    for key, value in second.items():
        if key not in merged:
            merged[key] = value
            continue
        mine = merged[key]
        if key == "properties" and isinstance(mine, dict) and isinstance(value, dict):
            properties = dict(mine)
            for name, sub in value.items():
                properties[name] = {"allOf": [properties[name], sub]} if name in properties else sub
            merged[key] = properties
        elif key == "required" and isinstance(mine, list) and isinstance(value, list):
            merged[key] = list(dict.fromkeys([*mine, *value]))
        elif key == "type":
            allowed = _type_list(mine)
            wanted = _type_list(value)
            both = [t for t in allowed if t in wanted or (t == "integer" and "number" in wanted)]
            both += [t for t in wanted if t == "integer" and "number" in allowed and t not in both]
            if not both:
                raise SchemaInstanceError(f"no type is both {mine!r} and {value!r}")
            merged[key] = both
        elif key in _LOWER_BOUNDS and _is_number(mine) and _is_number(value):
            merged[key] = max(mine, value)
        elif key in _UPPER_BOUNDS and _is_number(mine) and _is_number(value):
            merged[key] = min(mine, value)
        elif key == "exclusiveMinimum" and _is_number(mine) and _is_number(value):
            merged[key] = max(mine, value)
        elif key == "exclusiveMaximum" and _is_number(mine) and _is_number(value):
            merged[key] = min(mine, value)
        elif key == "enum" and isinstance(mine, list) and isinstance(value, list):
            merged[key] = [item for item in mine if item in value]
        elif key in ("items", "additionalProperties", "contains", "propertyNames"):
            if mine is False or value is False:
                merged[key] = False
            elif mine is True or mine == {}:
                merged[key] = value
            elif not (value is True or value == {}):
                merged[key] = {"allOf": [mine, value]}
        elif key == "multipleOf" and _is_number(mine) and _is_number(value) and mine != value:
            if isinstance(mine, int) and isinstance(value, int):
                merged[key] = math.lcm(mine, value)
        elif key in ("patternProperties", "$defs", "definitions"):
            merged[key] = {**value, **mine}
    return merged


def _type_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_multiple(value: float, step: float) -> bool:
    """``multipleOf`` exactly as the ``jsonschema`` validator decides it."""
    if isinstance(step, float):
        quotient = value / step
        try:
            return int(quotient) == quotient
        except OverflowError:
            return (Fraction(value) / Fraction(step)).denominator == 1
    return not value % step


def _kind(schema: Schema) -> str | None:
    """The type a typeless schema implies through its keywords (``None``: anything goes)."""
    if any(
        k in schema for k in ("properties", "required", "additionalProperties", "patternProperties")
    ):
        return "object"
    if any(k in schema for k in ("minProperties", "maxProperties", "dependentRequired")):
        return "object"
    if any(
        k in schema
        for k in ("items", "prefixItems", "minItems", "maxItems", "contains", "uniqueItems")
    ):
        return "array"
    if any(k in schema for k in ("minLength", "maxLength", "pattern", "format")):
        return "string"
    if any(
        k in schema
        for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
    ):
        return "number"
    return None


def _canonical(value: object) -> bytes:
    return msgspec.json.encode(value, order="sorted")


class _Generator:
    def __init__(self, root: object, rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    # -- dispatch ---------------------------------------------------------------------------

    def instance(self, schema: object, depth: int) -> Any:
        if schema is True:
            return self._anything()
        if schema is False:
            raise SchemaInstanceError("the schema `false` has no instance")
        if not isinstance(schema, Mapping):
            raise SchemaInstanceError(f"a schema must be an object or a boolean, not {schema!r}")
        flat = self._flatten(schema, depth)
        if "const" in flat:
            return flat["const"]
        if "enum" in flat:
            return self._enum(flat)
        kind = self._type(flat, depth)
        match kind:
            case "object":
                return self._object(flat, depth)
            case "array":
                return self._array(flat, depth)
            case "string":
                return self._string(flat)
            case "integer":
                return self._number(flat, integer=True)
            case "number":
                return self._number(flat, integer=False)
            case "boolean":
                return self.rng.random() < 0.5
            case "null":
                return None
            case None:
                return self._anything()
            case _:
                raise SchemaInstanceError(f"unknown type {kind!r}")

    def _anything(self) -> str:
        return phrase(self.rng, 2)

    def _type(self, schema: Schema, depth: int) -> str | None:
        declared = schema.get("type")
        if declared is None:
            return _kind(schema)
        types = _type_list(declared)
        if not types:
            raise SchemaInstanceError(f"no type allowed by {declared!r}")
        if len(types) == 1:
            return types[0]
        if depth >= _DEEP and "null" in types:
            return "null"
        implied = _kind(schema)
        if implied is not None:
            for candidate in (implied, "integer") if implied == "number" else (implied,):
                if candidate in types:
                    return candidate
        concrete = [t for t in types if t != "null"]
        return self.rng.choice(concrete) if concrete else "null"

    # -- composition ------------------------------------------------------------------------

    def _flatten(self, schema: Schema, depth: int) -> Schema:
        """Resolve ``$ref``, merge ``allOf`` and pick an ``anyOf`` / ``oneOf`` branch."""
        for _ in range(_MAX_REF_HOPS):
            if "$ref" in schema:
                target = self._resolve(schema["$ref"])
                rest = {k: v for k, v in schema.items() if k != "$ref"}
                if target is True:
                    schema = rest
                elif target is False or not isinstance(target, Mapping):
                    raise SchemaInstanceError(f"$ref {schema['$ref']!r} points at no instance")
                else:
                    schema = _merge(target, rest) if rest else target
            elif "allOf" in schema:
                merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
                for part in schema["allOf"]:
                    if part is True:
                        continue
                    if part is False or not isinstance(part, Mapping):
                        raise SchemaInstanceError("allOf holds a schema with no instance")
                    merged = _merge(merged, self._flatten(part, depth))
                schema = merged
            elif "anyOf" in schema or "oneOf" in schema:
                key = "anyOf" if "anyOf" in schema else "oneOf"
                base = {k: v for k, v in schema.items() if k != key}
                branch = self._branch(schema[key], base, depth)
                if isinstance(branch, Mapping):
                    schema = _merge(base, self._flatten(branch, depth))
                else:  # `true`: the branch adds nothing
                    schema = base
            else:
                return schema
        raise SchemaInstanceError("too many $ref hops (a reference cycle?)")

    def _resolve(self, ref: object) -> object:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaInstanceError(f"only local $ref are supported, not {ref!r}")
        node: object = self.root
        pointer = unquote(ref[1:])
        if not pointer:
            return node
        for token in pointer.lstrip("/").split("/"):
            part = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise SchemaInstanceError(f"$ref {ref!r} does not resolve")
        return node

    def _branch(self, branches: object, base: Schema, depth: int) -> object:
        if not isinstance(branches, list) or not branches:
            raise SchemaInstanceError("anyOf / oneOf needs a non-empty array")
        usable = [b for b in branches if b is not False]
        base_types = _type_list(base.get("type"))
        if base_types:
            fitting = [
                b
                for b in usable
                if not isinstance(b, Mapping)
                or "type" not in b
                or set(_type_list(b["type"])) & set(base_types)
            ]
            usable = fitting or usable
        if not usable:
            raise SchemaInstanceError("every branch is `false`")
        if depth >= _DEEP:
            # Deep in a (probably recursive) schema: end it with the simplest branch.
            for branch in usable:
                if isinstance(branch, Mapping) and branch.get("type") == "null":
                    return branch
            for branch in usable:
                if isinstance(branch, Mapping) and "$ref" not in branch:
                    return branch
            return usable[0]
        concrete = [b for b in usable if not (isinstance(b, Mapping) and b.get("type") == "null")]
        return self.rng.choice(concrete or usable)

    # -- values -----------------------------------------------------------------------------

    def _enum(self, schema: Schema) -> Any:
        values = schema["enum"]
        if not isinstance(values, list) or not values:
            raise SchemaInstanceError("enum needs a non-empty array")
        types = _type_list(schema.get("type"))
        if types:
            typed = [
                v
                for v in values
                if _json_type(v) in types or (_json_type(v) == "integer" and "number" in types)
            ]
            values = typed or values
        return self.rng.choice(values)

    def _object(self, schema: Schema, depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required: list[str] = [r for r in schema.get("required") or [] if isinstance(r, str)]
        patterns: Mapping[str, Any] = schema.get("patternProperties") or {}
        additional = schema.get("additionalProperties", True)
        least = int(schema.get("minProperties", 0))
        most = schema.get("maxProperties")
        dependent: Mapping[str, Any] = schema.get("dependentRequired") or {}

        chosen = list(dict.fromkeys(required))
        for name in list(chosen):
            chosen.extend(extra for extra in dependent.get(name) or [] if extra not in chosen)
        minimal = depth >= _DEEP
        for name in properties:
            if name in chosen or properties[name] is False:
                continue
            if minimal and len(chosen) >= least:
                break
            wanted = [
                name,
                *(e for e in dependent.get(name) or [] if e not in chosen and e != name),
            ]
            if most is not None and len(chosen) + len(wanted) > most:
                continue
            chosen.extend(wanted)
        counter = 0
        while len(chosen) < least and additional is not False and counter < least + 8:
            counter += 1
            name = f"extra_{counter}"
            if name not in chosen:
                chosen.append(name)

        result: dict[str, Any] = {}
        for name in chosen:
            schemas = [properties[name]] if name in properties else []
            schemas += [sub for pattern, sub in patterns.items() if re.search(pattern, name)]
            if not schemas:
                schemas = [additional]
            sub = schemas[0] if len(schemas) == 1 else {"allOf": schemas}
            result[name] = self.instance(sub, depth + 1)
        return result

    def _array(self, schema: Schema, depth: int) -> list[Any]:
        items = schema.get("items", True)
        prefix = schema.get("prefixItems")
        if isinstance(items, list):  # draft-4 tuple form
            prefix, items = items, schema.get("additionalItems", True)
        prefix = prefix if isinstance(prefix, list) else []
        least = int(schema.get("minItems", 0))
        most = schema.get("maxItems")
        contains = schema.get("contains")
        if contains is not None:
            least = max(least, int(schema.get("minContains", 1)))

        count = least if depth >= _DEEP else max(least, 2, len(prefix))
        if items is False:
            count = min(count, len(prefix))
        if most is not None:
            count = min(count, int(most))
        unique = bool(schema.get("uniqueItems"))
        seen: set[bytes] = set()
        result: list[Any] = []
        for position in range(count):
            sub: object = prefix[position] if position < len(prefix) else items
            if contains is not None and position < int(schema.get("minContains", 1)):
                sub = contains if sub is True else {"allOf": [sub, contains]}
            value = self.instance(sub, depth + 1)
            if unique:
                for _ in range(_MAX_UNIQUE_TRIES):
                    if _canonical(value) not in seen:
                        break
                    value = self.instance(sub, depth + 1)
                seen.add(_canonical(value))
            result.append(value)
        return result

    def _string(self, schema: Schema) -> str:
        least = int(schema.get("minLength", 0))
        most = schema.get("maxLength")
        most = None if most is None else int(most)
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            found = pattern_example(pattern, self.rng, min_length=least, max_length=most)
            if found is not None:
                return found
        make = _FORMATS.get(str(schema.get("format")))
        if make is not None:
            value = make(self.rng)
            if len(value) >= least and (most is None or len(value) <= most):
                return value
        value = phrase(self.rng, self.rng.randint(1, 3))
        if len(value) < least:
            value += "".join(
                self.rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(least - len(value))
            )
        if most is not None and len(value) > most:
            value = value[:most]
            if value.endswith(" "):
                value = value[:-1] + "x"
        return value

    def _number(self, schema: Schema, *, integer: bool) -> int | float:
        low, low_open = _bound(schema, "minimum", "exclusiveMinimum")
        high, high_open = _bound(schema, "maximum", "exclusiveMaximum")
        step = schema.get("multipleOf")
        if low is None and high is None:
            low, high = 0, _DEFAULT_SPAN
        elif low is None:
            assert high is not None
            low = high - _DEFAULT_SPAN
        elif high is None:
            high = low + _DEFAULT_SPAN

        def inside(value: float) -> bool:
            assert low is not None
            assert high is not None
            above = value > low if low_open else value >= low
            below = value < high if high_open else value <= high
            return above and below

        if _is_number(step) and step > 0:
            return self._multiple(step, low, high, inside, integer=integer)
        if integer:
            first = math.ceil(low)
            if low_open and first == low:
                first += 1
            last = math.floor(high)
            if high_open and last == high:
                last -= 1
            if first > last:
                raise SchemaInstanceError(f"no integer in the range of {dict(schema)!r}")
            return self.rng.randint(first, min(last, first + _DEFAULT_SPAN))
        value = round(low + (high - low) * self.rng.random(), 2)
        if inside(value):
            return value
        middle = (low + high) / 2
        if inside(middle):
            return middle
        raise SchemaInstanceError(f"no number in the range of {dict(schema)!r}")

    def _multiple(
        self,
        step: float,
        low: float,
        high: float,
        inside: Callable[[float], bool],
        *,
        integer: bool,
    ) -> int | float:
        first = math.ceil(low / step)
        last = math.floor(high / step)
        if first > last:
            raise SchemaInstanceError(f"no multiple of {step} between {low} and {high}")
        start = self.rng.randint(first, min(last, first + 20))
        for k in [*range(start, last + 1), *range(first, start)][:2000]:
            value: int | float = k * step
            if (
                isinstance(value, float)
                and value.is_integer()
                and (integer or isinstance(step, int))
            ):
                value = int(value)
            if integer and not isinstance(value, int):
                continue
            if inside(value) and _is_multiple(value, step):
                return value
        raise SchemaInstanceError(f"no usable multiple of {step} between {low} and {high}")


def _bound(schema: Schema, inclusive: str, exclusive: str) -> tuple[float | None, bool]:
    """A limit and whether it is open, from draft 6+ numbers or draft 4 boolean flags."""
    closed = schema.get(inclusive)
    opened = schema.get(exclusive)
    if isinstance(opened, bool):
        return (closed, opened) if _is_number(closed) else (None, False)
    candidates: list[tuple[float, bool]] = []
    if _is_number(closed):
        candidates.append((closed, False))
    if _is_number(opened):
        candidates.append((opened, True))
    if not candidates:
        return None, False
    pick = max if inclusive == "minimum" else min
    # The tighter of the two limits; at a tie the open one is the tighter.
    return pick(candidates, key=lambda c: (c[0], c[1] if inclusive == "minimum" else not c[1]))


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
