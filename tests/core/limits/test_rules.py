"""Which limits apply: a subject's override, else the scope's stored default, else config."""

from __future__ import annotations

from gridgate.core.limits.rules import LimitRules
from gridgate.settings import LimitSettings, LimitsSettings
from gridgate.storage.limiter.port import Limit
from gridgate.storage.records import UNLIMITED, LimitOverride

CONFIG = LimitsSettings(
    key=LimitSettings(requests_per_minute=60, concurrent=4),
    instrument=LimitSettings(tokens_per_minute=1_000_000),
)


def test_config_defaults_apply_to_every_subject() -> None:
    rules = LimitRules(CONFIG)
    assert rules.any
    assert rules.for_request("k1", "a1", "text-prime") == (
        Limit("key", "k1", "requests", 60),
        Limit("key", "k1", "concurrent", 4),
        Limit("instrument", "text-prime", "tokens", 1_000_000),
    )


def test_no_limits_anywhere_means_none_apply() -> None:
    rules = LimitRules(LimitsSettings())
    assert not rules.any
    assert rules.for_request("k1", "a1", "text-prime") == ()


def test_a_subjects_override_beats_the_stored_default_which_beats_config() -> None:
    rules = LimitRules(CONFIG)
    rules.replace(
        [
            LimitOverride(scope="key", subject="*", requests_per_minute=30, tokens_per_minute=500),
            LimitOverride(scope="key", subject="k1", requests_per_minute=5, concurrent=UNLIMITED),
            LimitOverride(scope="account", subject="a1", concurrent=2),
        ]
    )
    assert rules.for_request("k1", "a1", "text-prime") == (
        Limit("key", "k1", "requests", 5),
        Limit("key", "k1", "tokens", 500),
        Limit("account", "a1", "concurrent", 2),
        Limit("instrument", "text-prime", "tokens", 1_000_000),
    )
    assert rules.for_request("k2", "a2", "text-prime") == (
        Limit("key", "k2", "requests", 30),
        Limit("key", "k2", "tokens", 500),
        Limit("key", "k2", "concurrent", 4),
        Limit("instrument", "text-prime", "tokens", 1_000_000),
    )


def test_replacing_the_overrides_forgets_what_was_resolved() -> None:
    rules = LimitRules(LimitsSettings())
    assert rules.for_request("k1", "a1", "i") == ()
    rules.replace([LimitOverride(scope="key", subject="k1", requests_per_minute=0)])
    assert rules.any
    assert rules.for_request("k1", "a1", "i") == (Limit("key", "k1", "requests", 0),)
    rules.replace([])
    assert rules.for_request("k1", "a1", "i") == ()
