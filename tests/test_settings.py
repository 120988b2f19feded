"""Settings: unknown keys and bad values are refused with the config path named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridgate.settings import SettingsError, load_settings

SUPPLIER = '[[suppliers]]\nname = "s"\nbase_url = "http://127.0.0.1:1/v1"\n'
OFFER = (
    '[[offers]]\nsupplier = "s"\ninstrument = "text-prime"\nmodel = "m"\n'
    'input_usd_per_m = 0.1\noutput_usd_per_m = "0.4"\nquality = 40\ncontext = 200000\n'
    "max_output = 64000\n"
)


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_settings(str(path), environ={})


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[server]\nprot = 1\n", "server.prot: unknown key"),
        ("colour = 1\n", "colour: unknown key"),
        ('[server]\nport = "x"\n', "server.port: expected `int`"),
        ("[server]\nport = 70000\n", "server.port"),
        (
            SUPPLIER + OFFER.replace('model = "m"', 'model = "m"\nprice = 1'),
            "offers[0].price: unknown key",
        ),
        (SUPPLIER + OFFER.replace("0.1", "0.0000000001"), "offers[0].input_usd_per_m"),
        (SUPPLIER + OFFER.replace('supplier = "s"', 'supplier = "t"'), "offers[0].supplier"),
        (SUPPLIER + OFFER.replace("text-prime", "text-ultra"), "offers[0].instrument"),
        ('[database]\nurl = "mysql://x"\n', "database.url"),
        ('[redis]\nclient = "hiredis"\n', "redis.client"),
        ("[[suppliers]]\nname = 1\n", "suppliers[0]"),
        (SUPPLIER + 'wire = "grpc"\n', "suppliers[0].wire"),
        ("[server]\nheader_timeout_seconds = 0\n", "server.header_timeout_seconds: must be"),
        ("[server]\nbody_timeout_seconds = -1\n", "server.body_timeout_seconds: must be"),
        ("[server]\nmax_connections = -1\n", "server.max_connections: must be"),
        ("[server]\nworker_restart_limit = 0\n", "server.worker_restart_limit: must be"),
        ("[responses]\nretention_days = -1\n", "responses.retention_days: must be"),
        ("[responses]\nretention_days = 3651\n", "responses.retention_days: must be"),
        ("[responses]\nretention_days = 1.5\n", "responses.retention_days: expected `int`"),
        ("[responses]\nsweep_seconds = 0\n", "responses.sweep_seconds: must be"),
        ("[responses]\nkeep = 1\n", "responses.keep: unknown key"),
    ],
)
def test_errors_name_the_config_path(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, text)
    assert named in str(caught.value)
    assert str(tmp_path / "c.toml") in str(caught.value)


def test_a_valid_file_and_env_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(SUPPLIER + OFFER)
    settings = load_settings(
        str(path), environ={"GRIDGATE_PORT": "9999", "GRIDGATE_DATA_DIR": "/tmp/x"}
    )
    assert settings.server.port == 9999
    assert settings.database_url == "sqlite:////tmp/x/gridgate.db"
    assert settings.offers[0].model == "m"


def test_config_from_the_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[server]\nport = 1234\n")
    assert load_settings(None, environ={"GRIDGATE_CONFIG": str(path)}).server.port == 1234


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such config file"):
        load_settings(str(tmp_path / "nope.toml"), environ={})
    with pytest.raises(SettingsError, match="not valid TOML"):
        load(tmp_path, "[server\n")


def test_the_readme_config_example_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [part.split("```", 1)[0] for part in readme.split("```toml\n")[1:]]
    example = next(block for block in blocks if "[[offers]]" in block)  # the config reference
    settings = load(tmp_path, example)
    assert settings.offers[0].model == "openai/gpt-oss-120b"  # type: ignore[attr-defined]


def test_every_toml_block_in_the_readme_is_valid_config(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [part.split("```", 1)[0] for part in readme.split("```toml\n")[1:]]
    # the one block that is another program's configuration says so on its first line
    theirs = [b for b in blocks if b.startswith("# ~/.codex/config.toml")]
    assert len(theirs) == 1
    for block in blocks:
        if block not in theirs:
            load(tmp_path, block)


@pytest.mark.parametrize("wire", ["openai", "anthropic", "openai-responses"])
def test_every_wire_format_is_accepted(tmp_path: Path, wire: str) -> None:
    settings = load(tmp_path, SUPPLIER + f'wire = "{wire}"\n' + OFFER)
    assert settings.suppliers[0].wire == wire  # type: ignore[attr-defined]


@pytest.mark.parametrize("client", ["resp", "redis-py"])
def test_the_rate_limiters_redis_client_is_chosen_in_redis_client(
    tmp_path: Path, client: str
) -> None:
    settings = load(tmp_path, f'[redis]\nurl = "redis://127.0.0.1:6379/0"\nclient = "{client}"\n')
    assert settings.redis.client == client  # type: ignore[attr-defined]
    assert load(tmp_path, "").redis.client == "resp"  # type: ignore[attr-defined]
