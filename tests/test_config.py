"""Configuration: names, defaults, parsing, `.env` precedence and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.discord.settings import DiscordSettings
from adapters.slack.settings import SlackSettings
from bot.config import Config, ConfigError, config_from_mapping, load_config
from bot.platforms import configured_platforms, secrets

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_safe_and_offline() -> None:
    config = config_from_mapping({})
    assert config.db_path == "memory.sqlite3"
    assert config.context_tokens == 32_000
    assert config.output_reserve == 4_096
    assert config.memory_scope == "thread"
    assert config.tracing is False
    assert config.model_api == "responses"
    assert configured_platforms(config.environment) == []
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
        ("BOT_CONTEXT_TOKENS", "lots"),
        ("BOT_MAX_CONCURRENCY", "0"),
        ("BOT_MODEL_API", "completions"),
        ("BOT_TRACING", "maybe"),
        ("BOT_MODEL_TIMEOUT", "-1"),
        ("BOT_RETENTION_DAYS", "soon"),
        ("BOT_SHUTDOWN_GRACE", "0"),
        ("BOT_DATABASE_URL", "mysql://db/memory"),
        ("BOT_DATABASE_POOL", "0"),
        ("BOT_THREAD_WAIT", "never"),
    ],
)
def test_bad_values_name_the_setting(key: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=key):
        config_from_mapping({key: raw})


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("DISCORD_ALLOWED_GUILDS", "123,abc"),
        ("DISCORD_DEV_GUILD", "general"),
        ("SLACK_PORT", "70000"),
        ("SLACK_STREAMING", "sometimes"),
    ],
)
def test_adapters_name_their_own_bad_settings(key: str, raw: str) -> None:
    tokens = {"DISCORD_TOKEN": "d", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}
    config = config_from_mapping({**tokens, key: raw})
    settings = DiscordSettings if key.startswith("DISCORD") else SlackSettings
    with pytest.raises(ConfigError, match=key):
        settings.from_config(config)


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
    assert DiscordSettings.from_config(config).policy.guilds == {1, 2, 3}
    slack = SlackSettings.from_config(config)
    assert slack.policy.users == {"U1", "U2"}
    assert not slack.socket_mode
    assert configured_platforms(config.environment) == ["discord", "slack"]
    assert set(secrets(config.environment)) == {"discord-token", "xoxb-1", "s3cr3t"}
    assert "discord-token" not in repr(config)
    assert "discord-token" not in repr(DiscordSettings.from_config(config))


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("BOT_NAME=from-file\nBOT_CONTEXT_TOKENS=9000\n")
    config = load_config({"BOT_NAME": "from-env"}, env_file)
    assert config.name == "from-env"
    assert config.context_tokens == 9000


def test_env_example_documents_every_setting() -> None:
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    sources = [ROOT / "bot" / "config.py", *(ROOT / "adapters").rglob("*.py")]
    source = "\n".join(path.read_text() for path in sources)
    read = set(re.findall(r'"((?:OPENAI|BOT|DISCORD|SLACK)_[A-Z_]+)"', source))
    assert read <= documented, f"undocumented: {sorted(read - documented)}"
    assert config_from_mapping({}) == Config()


def test_a_budget_too_small_for_answer_and_summary_is_refused() -> None:
    with pytest.raises(ConfigError, match="BOT_CONTEXT_TOKENS must be at least 6,096"):
        config_from_mapping({"BOT_CONTEXT_TOKENS": "5000"})
    with pytest.raises(ConfigError, match="BOT_MEMORY_SCOPE"):
        config_from_mapping({"BOT_MEMORY_SCOPE": "galaxy"})
    small = config_from_mapping(
        {"BOT_CONTEXT_TOKENS": "3000", "BOT_MAX_OUTPUT_TOKENS": "500", "BOT_SUMMARY_TOKENS": "300"}
    )
    assert small.output_reserve == 500


def test_a_database_url_moves_memory_to_postgres_and_its_password_is_a_secret() -> None:
    config = config_from_mapping(
        {"BOT_DATABASE_URL": "postgresql://bot:pa55word@db/memory", "BOT_MAX_CONCURRENCY": "6"}
    )
    assert config.memory_location == "postgresql://bot:pa55word@db/memory"
    assert config.pool_size == 10  # short transactions only: turns in flight do not size it
    assert "pa55word" in config.secrets
    assert "pa55word" not in repr(config)
    assert config_from_mapping({}).memory_location == "memory.sqlite3"


def test_a_bad_value_says_where_it_was_set(tmp_path: Path) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text("BOT_MAX_CONCURRENCY=0\nBOT_CONTEXT_TOKENS=lots\n")
    with pytest.raises(ConfigError) as from_file:
        load_config({}, env_file)
    assert str(from_file.value).endswith(f"fix it in {env_file} (see .env.example)."), str(
        from_file.value
    )
    # The environment wins over the file, so it is what to fix.
    with pytest.raises(ConfigError) as from_environment:
        load_config({"BOT_CONTEXT_TOKENS": "many"}, env_file)
    assert "got 'many': fix it in the environment (see .env.example)." in str(
        from_environment.value
    )
    with pytest.raises(ConfigError) as without_file:
        load_config({"BOT_MAX_CONCURRENCY": "0"}, None)
    assert "fix it in the environment" in str(without_file.value)
    shards = {"DISCORD_TOKEN": "d", "DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "0,2"}
    with pytest.raises(ConfigError, match="fix it in the environment"):
        DiscordSettings.from_config(load_config(shards, None))
