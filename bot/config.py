"""Configuration: read once from the environment and `.env` into one typed, immutable object."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from dotenv import dotenv_values

ModelApi = Literal["responses", "chat_completions"]

DEFAULT_INSTRUCTIONS = (
    "You are a friendly, concise assistant taking part in a chat conversation. "
    "Answer in Markdown when it helps readability."
)

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says what to set."""


@dataclass(frozen=True)
class Config:
    """Every setting the bot reads, with its default. Field names mirror the variables."""

    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    model: str | None = None
    model_api: ModelApi = "responses"
    model_timeout: float = 60.0
    model_retries: int = 2
    instructions: str = DEFAULT_INSTRUCTIONS
    name: str = "bot"
    db_path: str = "memory.sqlite3"
    history_limit: int = 50
    max_concurrency: int = 8
    retention_days: float | None = None
    tracing: bool = False
    log_level: str | None = None
    discord_token: str | None = field(default=None, repr=False)
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    max_input_chars: int = 16_000
    rate_limit_per_minute: int = 20
    reply_to_bots: bool = False
    discord_allowed_guilds: frozenset[int] = frozenset()
    discord_allowed_channels: frozenset[int] = frozenset()
    discord_allowed_users: frozenset[int] = frozenset()
    discord_allowed_roles: frozenset[int] = frozenset()
    discord_dev_guild: int | None = None
    discord_open_threads: bool = False
    slack_allowed_channels: frozenset[str] = frozenset()
    slack_allowed_users: frozenset[str] = frozenset()
    slack_port: int = 3000
    slack_streaming: bool = True

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown in logs or messages."""
        values = (
            self.openai_api_key,
            self.discord_token,
            self.slack_bot_token,
            self.slack_app_token,
            self.slack_signing_secret,
        )
        return tuple(v for v in values if v)

    @property
    def platforms(self) -> tuple[str, ...]:
        """Platforms whose credentials are configured, in a stable order."""
        found: list[str] = []
        if self.discord_token:
            found.append("discord")
        if self.slack_bot_token and (self.slack_app_token or self.slack_signing_secret):
            found.append("slack")
        return tuple(found)

    def require_model_credentials(self) -> None:
        """Fail with one clear line when the model cannot possibly be reached.

        A custom `OPENAI_BASE_URL` (Ollama, vLLM, LM Studio...) often needs no key, so the key
        is only demanded for OpenAI's own endpoint.
        """
        if not self.openai_api_key and not self.openai_base_url:
            raise ConfigError(
                "OPENAI_API_KEY is not set: put it in .env (see .env.example) or set "
                "OPENAI_BASE_URL to an OpenAI-compatible server that needs no key."
            )


def load_config(
    environ: Mapping[str, str] | None = None, dotenv_path: str | Path | None = ".env"
) -> Config:
    """Build the configuration from `.env` overlaid by the real environment.

    The process environment wins over `.env`, as deployments expect. Nothing is written back
    to `os.environ`, so the result is the only place settings live.
    """
    merged: dict[str, str] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(os.environ if environ is None else environ)
    return config_from_mapping(merged)


def config_from_mapping(env: Mapping[str, str]) -> Config:
    """Parse and validate settings from a plain mapping (blank values count as unset)."""
    values = {k: v.strip() for k, v in env.items() if v is not None and v.strip()}
    get = values.get
    base_url = get("OPENAI_BASE_URL")
    # Compatible servers rarely speak the Responses API, so pick the API that will work.
    default_api: ModelApi = "chat_completions" if base_url else "responses"
    return Config(
        openai_api_key=get("OPENAI_API_KEY"),
        openai_base_url=base_url,
        model=get("BOT_MODEL"),
        model_api=_parse(values, "BOT_MODEL_API", _model_api, default_api),
        model_timeout=_parse(values, "BOT_MODEL_TIMEOUT", _positive_float, 60.0),
        model_retries=_parse(values, "BOT_MODEL_RETRIES", _non_negative_int, 2),
        instructions=get("BOT_INSTRUCTIONS", DEFAULT_INSTRUCTIONS).replace("\\n", "\n"),
        name=get("BOT_NAME", "bot"),
        db_path=get("BOT_DB_PATH", "memory.sqlite3"),
        history_limit=_parse(values, "BOT_HISTORY_LIMIT", _positive_int, 50),
        max_concurrency=_parse(values, "BOT_MAX_CONCURRENCY", _positive_int, 8),
        retention_days=_parse(values, "BOT_RETENTION_DAYS", _retention, None),
        tracing=_parse(values, "BOT_TRACING", _boolean, False),
        log_level=_parse(values, "BOT_LOG_LEVEL", _log_level, None),
        discord_token=get("DISCORD_TOKEN"),
        slack_bot_token=get("SLACK_BOT_TOKEN"),
        slack_app_token=get("SLACK_APP_TOKEN"),
        slack_signing_secret=get("SLACK_SIGNING_SECRET"),
        max_input_chars=_parse(values, "BOT_MAX_INPUT_CHARS", _positive_int, 16_000),
        rate_limit_per_minute=_parse(values, "BOT_RATE_LIMIT", _non_negative_int, 20),
        reply_to_bots=_parse(values, "BOT_REPLY_TO_BOTS", _boolean, False),
        discord_allowed_guilds=_parse(values, "DISCORD_ALLOWED_GUILDS", _id_set, frozenset()),
        discord_allowed_channels=_parse(values, "DISCORD_ALLOWED_CHANNELS", _id_set, frozenset()),
        discord_allowed_users=_parse(values, "DISCORD_ALLOWED_USERS", _id_set, frozenset()),
        discord_allowed_roles=_parse(values, "DISCORD_ALLOWED_ROLES", _id_set, frozenset()),
        discord_dev_guild=_parse(values, "DISCORD_DEV_GUILD", _snowflake, None),
        discord_open_threads=_parse(values, "DISCORD_OPEN_THREADS", _boolean, False),
        slack_allowed_channels=_parse(values, "SLACK_ALLOWED_CHANNELS", _name_set, frozenset()),
        slack_allowed_users=_parse(values, "SLACK_ALLOWED_USERS", _name_set, frozenset()),
        slack_port=_parse(values, "SLACK_PORT", _port, 3000),
        slack_streaming=_parse(values, "SLACK_STREAMING", _boolean, True),
    )


def _parse(values: Mapping[str, str], key: str, parse: Callable[[str], T], default: T) -> T:
    raw = values.get(key)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{key} {exc}, got {raw!r}: fix it in .env (see .env.example).") from None


def _positive_int(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError("must be a whole number of at least 1")
    return int(raw)


def _non_negative_int(raw: str) -> int:
    if not raw.isdigit():
        raise ValueError("must be a whole number of at least 0")
    return int(raw)


def _snowflake(raw: str) -> int:
    if not raw.isdigit():
        raise ValueError("must be a numeric ID (Discord: Developer Mode, then Copy ID)")
    return int(raw)


def _id_set(raw: str) -> frozenset[int]:
    """Comma- or space-separated numeric IDs; empty means 'everyone'."""
    return frozenset(_snowflake(part) for part in raw.replace(",", " ").split())


def _name_set(raw: str) -> frozenset[str]:
    return frozenset(raw.replace(",", " ").split())


def _port(raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError("must be a port number between 1 and 65535")
    return int(raw)


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError("must be a number of seconds above 0")
    return value


def _retention(raw: str) -> float | None:
    if raw.lower() in {"off", "none", "0"}:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError("must be a number of days above 0, or 'off'")
    return value


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _model_api(raw: str) -> ModelApi:
    lowered = raw.lower().replace("-", "_")
    if lowered == "responses":
        return "responses"
    if lowered == "chat_completions":
        return "chat_completions"
    raise ValueError("must be 'responses' or 'chat_completions'")


def _log_level(raw: str) -> str | None:
    upper = raw.upper()
    if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
    return upper
