"""Deterministic text: words from a fixed vocabulary picked by a seeded PRNG.

Token model: **one word is one token**. A token's text carries its leading space
(``"Lorem"``, ``" ipsum"``, ``" dolor."``) so concatenating tokens gives the content, just as
OpenAI's tokens concatenate. A sentence ends (``"."``) every ``_SENTENCE`` words.

The seed of a choice is a hash of (salt, model, prompt digest, request ``seed``, choice index),
so the same request always yields the same text, different choices differ, and a shorter
``max_tokens`` yields a prefix of the longer answer.
"""

from __future__ import annotations

import hashlib
import random
import re

_WORDS = """
    able about above across after again against air all almost along also always amount
    answer any appear area around ask back balance base bear become before begin behind
    below best better between big bit blue board body book both bring build call can care
    carry case catch cause center certain chain change check clear close cloud color come
    common complete cost count course cover cross current cut day deal deep develop
    different direct distance down draw dream early earth east easy edge effect end energy
    enough even event every example exchange fact fair far fast field figure fill final
    find fine fire first flow follow force form forward free fresh front full garden gather
    give glass good grain great green ground group grow half hand happen hard heart heavy
    help high hold home hour idea important inch instrument iron island keep kind land large
    last late learn least level light line list little live long machine main make market
    matter measure meet middle mind minute moment money morning move much music name near
    need never next night north note number object offer often open order other over page
    paper part pass path pattern people piece place plain plan point power present price
    quick quiet rain reach ready real record region rest result right river road rock round
    rule run safe same sample score season second serve settle shape share short side
    signal simple single size slow small smooth solid sound south space speed spring square
    stand start state step still stone story strong supply system table take test thing
    third thought through time together tone total track trade travel true turn under unit
    until value voice wait walk warm watch water wave weight west whole wide wind window
    winter within word work world write year yellow young
"""
VOCABULARY: tuple[str, ...] = tuple(_WORDS.split())
_SPACED = tuple(" " + word for word in VOCABULARY)
_CAPITALISED = {" " + word: " " + word.capitalize() for word in VOCABULARY}

_SENTENCE = 12
_MASK64 = (1 << 64) - 1
_WORD = re.compile(r"\S+\s*")


def choice_seed(
    *, salt: str, model: str, prompt_digest: bytes, seed: int | None, index: int
) -> int:
    """The 64-bit PRNG seed of one choice of one request."""
    h = hashlib.blake2b(digest_size=8)
    h.update(salt.encode())
    h.update(b"\x00")
    h.update(model.encode())
    h.update(b"\x00")
    h.update(prompt_digest)
    h.update(b"\x00" + str(seed).encode() + b"\x00" + str(index).encode())
    return int.from_bytes(h.digest(), "little")


def derived_rng(seed: int, stream: int) -> random.Random:
    """An independent PRNG for one purpose (text, logprobs, reasoning, tools) of one choice."""
    return random.Random((seed ^ (stream * 0x9E3779B97F4A7C15)) & _MASK64)


def words(rng: random.Random, count: int, total: int | None = None) -> list[str]:
    """The first ``count`` word tokens of a ``total``-token text (default: all of it).

    Sentences of ``_SENTENCE`` words: the first capitalised, the last (and the text's last)
    ending in ``.``. A shorter ``count`` gives a prefix of the longer text.
    """
    total = count if total is None else total
    tokens = rng.choices(_SPACED, k=count)
    for i in range(0, count, _SENTENCE):
        tokens[i] = _CAPITALISED[tokens[i]]
    for i in range(_SENTENCE - 1, count, _SENTENCE):
        tokens[i] += "."
    if tokens:
        if count == total and count % _SENTENCE:
            tokens[-1] += "."
        tokens[0] = tokens[0][1:]
    return tokens


def phrase(rng: random.Random, count: int) -> str:
    """A short lower-case phrase (no punctuation), for values inside generated JSON."""
    return " ".join(rng.choices(VOCABULARY, k=count))


def tokenize(text: str) -> list[str]:
    """Split existing text into word tokens (each keeps its trailing whitespace)."""
    stripped = text.lstrip()
    lead = text[: len(text) - len(stripped)]
    tokens = _WORD.findall(stripped)
    if lead:
        if tokens:
            tokens[0] = lead + tokens[0]
        else:
            tokens = [lead]
    return tokens


def fragments(text: str, size: int = 4) -> list[str]:
    """Split structured text (JSON) into ``size``-character tokens, as a model streams it."""
    return [text[i : i + size] for i in range(0, len(text), size)]
