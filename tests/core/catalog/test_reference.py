"""The reference instruments and the ids the config's checks accept name the same three."""

from gridgate.core.catalog.reference import default_instruments
from gridgate.settings import DEFAULT_INSTRUMENT_IDS


def test_the_config_checks_know_every_reference_instrument() -> None:
    assert tuple(i.id for i in default_instruments()) == DEFAULT_INSTRUMENT_IDS
