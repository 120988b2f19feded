"""Strings that match a regular expression (JSON Schema ``pattern``), best effort.

A small parser covers the usual shapes: literals, escapes (``\\d \\w \\s``, escaped
metacharacters, ``\\n \\t \\xHH \\uHHHH``), classes with ranges and negation, ``.``,
groups (plain, ``(?:``, named), alternation, the quantifiers ``* + ? {n} {n,} {n,m}`` (lazy
or possessive too) and the anchors ``^ $``. Lookarounds are skipped; backreferences are not
supported. Every candidate is checked with :func:`re.search`; when none fits, the caller gets ``None``
and falls back to a plain string.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass

_POOL = string.ascii_letters + string.digits
_WORD = string.ascii_letters + string.digits + "_"
_ESCAPE_SETS = {
    "d": string.digits,
    "w": _WORD,
    "s": " ",
    "D": string.ascii_letters,
    "W": "-",
    "S": _POOL,
}
_ESCAPE_CHARS = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "0": "\0"}
_EXTRA_REPEATS = 3
_BRACES = re.compile(r"\{(\d*)(,?)(\d*)\}")


class _Unsupported(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Chars:
    options: str


@dataclass(frozen=True, slots=True)
class _Seq:
    items: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Alt:
    options: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Repeat:
    item: _Node
    low: int
    high: int | None


_Node = _Chars | _Seq | _Alt | _Repeat


def pattern_example(
    pattern: str, rng: random.Random, *, min_length: int = 0, max_length: int | None = None
) -> str | None:
    """A string ``s`` with ``re.search(pattern, s)`` and ``min_length <= len(s) <= max_length``."""
    try:
        compiled = re.compile(pattern)
    except re.error:
        return None
    try:
        node: _Node | None = _Parser(pattern).parse()
    except _Unsupported:
        node = None
    candidates: list[str] = []
    if node is not None:
        candidates.extend(_generate(node, rng) for _ in range(8))
    candidates.extend(["", "a", "A", "0", "a1", "example"])
    for candidate in candidates:
        for padded in _paddings(candidate, min_length):
            if _fits(padded, min_length, max_length) and compiled.search(padded):
                return padded
    return None


def _paddings(text: str, min_length: int) -> list[str]:
    missing = min_length - len(text)
    if missing <= 0:
        return [text]
    return [text, text + "x" * missing, "x" * missing + text]


def _fits(text: str, low: int, high: int | None) -> bool:
    return len(text) >= low and (high is None or len(text) <= high)


def _generate(node: _Node, rng: random.Random) -> str:
    match node:
        case _Chars(options):
            return rng.choice(options) if options else ""
        case _Seq(items):
            return "".join(_generate(item, rng) for item in items)
        case _Alt(options):
            return _generate(rng.choice(options), rng)
        case _Repeat(item, low, high):
            top = low + _EXTRA_REPEATS if high is None else min(high, low + _EXTRA_REPEATS)
            return "".join(_generate(item, rng) for _ in range(rng.randint(low, top)))


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0

    def parse(self) -> _Node:
        node = self._alternation()
        if self.pos != len(self.text):
            raise _Unsupported(f"unexpected {self.text[self.pos]!r}")
        return node

    def _peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def _take(self) -> str:
        if self.pos >= len(self.text):
            raise _Unsupported("unexpected end")
        char = self.text[self.pos]
        self.pos += 1
        return char

    def _alternation(self) -> _Node:
        options = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            options.append(self._sequence())
        return options[0] if len(options) == 1 else _Alt(tuple(options))

    def _sequence(self) -> _Node:
        items: list[_Node] = []
        while (char := self._peek()) is not None and char not in "|)":
            atom = self._atom()
            if atom is not None:
                items.append(self._quantified(atom))
        return _Seq(tuple(items))

    def _atom(self) -> _Node | None:
        char = self._take()
        if char in "^$":
            return None
        if char == ".":
            return _Chars(_POOL)
        if char == "(":
            return self._group()
        if char == "[":
            return _Chars(self._class())
        if char == "\\":
            return _Chars(self._escape())
        if char in "*+?{":
            raise _Unsupported("nothing to repeat")
        return _Chars(char)

    def _group(self) -> _Node:
        lookaround = False
        if self.text.startswith(("?=", "?!"), self.pos):
            lookaround = True
            self.pos += 2
        elif self.text.startswith(("?<=", "?<!"), self.pos):
            lookaround = True
            self.pos += 3
        elif self.text.startswith("?:", self.pos):
            self.pos += 2
        elif self.text.startswith(("?P<", "?<"), self.pos):
            end = self.text.find(">", self.pos)
            if end < 0:
                raise _Unsupported("unterminated group name")
            self.pos = end + 1
        elif self._peek() == "?":
            raise _Unsupported("group extension")
        node = self._alternation()
        if self._take() != ")":
            raise _Unsupported("unbalanced group")
        # A lookaround consumes nothing: skip it and let the final re.search judge.
        return _Seq(()) if lookaround else node

    def _escape(self) -> str:
        char = self._take()
        if char in _ESCAPE_SETS:
            return _ESCAPE_SETS[char]
        if char in _ESCAPE_CHARS:
            return _ESCAPE_CHARS[char]
        if char in "xu":
            width = 2 if char == "x" else 4
            digits = self.text[self.pos : self.pos + width]
            if len(digits) != width or any(d not in string.hexdigits for d in digits):
                raise _Unsupported("bad hex escape")
            self.pos += width
            return chr(int(digits, 16))
        if char.isalnum():
            raise _Unsupported(f"escape \\{char}")
        return char

    def _class(self) -> str:
        negated = self._peek() == "^"
        if negated:
            self.pos += 1
        members: list[str] = []
        first = True
        while True:
            char = self._take()
            if char == "]" and not first:
                break
            first = False
            if char == "\\":
                chunk = self._escape()
                if len(chunk) != 1:
                    members.append(chunk)
                    continue
                char = chunk
            if self._peek() == "-" and self.text[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.pos += 1
                end = self._take()
                if end == "\\":
                    end = self._escape()
                    if len(end) != 1:
                        raise _Unsupported("range to a class")
                if ord(end) < ord(char):
                    raise _Unsupported("reversed range")
                members.append(
                    "".join(chr(c) for c in range(ord(char), min(ord(end), ord(char) + 512) + 1))
                )
            else:
                members.append(char)
        chars = "".join(dict.fromkeys("".join(members)))
        if negated:
            return "".join(c for c in _POOL if c not in chars)
        return chars

    def _quantified(self, atom: _Node) -> _Node:
        char = self._peek()
        if char is None:
            return atom
        if char == "*":
            low, high = 0, None
        elif char == "+":
            low, high = 1, None
        elif char == "?":
            low, high = 0, 1
        elif char == "{":
            match = _BRACES.match(self.text, self.pos)
            if match is None or (not match.group(1) and not match.group(3)):
                return atom  # a literal brace, as Python reads it
            low = int(match.group(1) or 0)
            high = low if not match.group(2) else (int(match.group(3)) if match.group(3) else None)
            self.pos = match.end() - 1
        else:
            return atom
        self.pos += 1
        if self._peek() in ("?", "+"):
            self.pos += 1
        return _Repeat(atom, low, high)
