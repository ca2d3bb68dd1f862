"""Configuration: names, defaults, parsing, `.env` precedence and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import Config, ConfigError, config_from_mapping, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_safe_and_offline() -> None:
    config = config_from_mapping({})
    assert config.db_path == "memory.sqlite3"
    assert config.history_limit == 50
    assert config.tracing is False
    assert config.model_api == "responses"
    assert config.platforms == ()
    assert config.retention_days is None


def test_a_custom_endpoint_defaults_to_chat_completions_and_needs_no_key() -> None:
    config = config_from_mapping({"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"})
    assert config.model_api == "chat_completions"
    config.require_model_credentials()


def test_missing_key_is_one_clear_line() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({}).require_model_credentials()
    assert "OPENAI_API_KEY" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("BOT_HISTORY_LIMIT", "lots"),
        ("BOT_MAX_CONCURRENCY", "0"),
        ("BOT_MODEL_API", "completions"),
        ("BOT_TRACING", "maybe"),
        ("BOT_MODEL_TIMEOUT", "-1"),
        ("DISCORD_ALLOWED_GUILDS", "123,abc"),
        ("SLACK_PORT", "70000"),
        ("BOT_RETENTION_DAYS", "soon"),
    ],
)
def test_bad_values_name_the_setting(key: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=key):
        config_from_mapping({key: raw})


def test_lists_and_platforms() -> None:
    config = config_from_mapping(
        {
            "DISCORD_TOKEN": "discord-token",
            "DISCORD_ALLOWED_GUILDS": "1, 2 3",
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "s3cr3t",
            "SLACK_ALLOWED_USERS": "U1,U2",
            "BOT_RETENTION_DAYS": "off",
        }
    )
    assert config.discord_allowed_guilds == {1, 2, 3}
    assert config.slack_allowed_users == {"U1", "U2"}
    assert config.platforms == ("discord", "slack")
    assert set(config.secrets) == {"discord-token", "xoxb-1", "s3cr3t"}
    assert "discord-token" not in repr(config)


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("BOT_NAME=from-file\nBOT_HISTORY_LIMIT=7\n")
    config = load_config({"BOT_NAME": "from-env"}, env_file)
    assert config.name == "from-env"
    assert config.history_limit == 7


def test_env_example_documents_every_setting() -> None:
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    source = (ROOT / "bot" / "config.py").read_text()
    read = set(re.findall(r'"((?:OPENAI|BOT|DISCORD|SLACK)_[A-Z_]+)"', source))
    assert read <= documented, f"undocumented: {sorted(read - documented)}"
    assert config_from_mapping({}) == Config()
