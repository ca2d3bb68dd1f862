"""The core's configuration: read once from the environment and `.env` into one immutable object.

Platform settings are not here: each adapter reads its own (`DISCORD_*`, `SLACK_*`) from
`Config.environment`, so adding a platform never touches this module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values

from .settings import (
    ConfigError,
    Settings,
    boolean,
    non_negative_int,
    port,
    positive_float,
    positive_int,
    read,
    text,
)

__all__ = ["Config", "ConfigError", "load_config"]

ModelApi = Literal["responses", "chat_completions"]
MemoryScope = Literal["thread", "channel", "user"]
Vision = Literal["auto", "on", "off"]
Approvers = Literal["asker", "allowed"]
LogFormat = Literal["text", "json"]

OUTPUT_RESERVE = 4_096
"""Tokens kept free for the answer when `BOT_MAX_OUTPUT_TOKENS` does not say."""
MIN_HISTORY_TOKENS = 1_000
"""The least a request must have left for history and the new message to be worth making."""

DEFAULT_INSTRUCTIONS = (
    "You are a friendly, concise assistant taking part in a chat conversation. "
    "Answer in Markdown when it helps readability."
)


@dataclass(frozen=True)
class Config:
    """Every core setting, with its default (the only place defaults are written).

    Field names mirror the variables; `environment` keeps every variable as read, for the
    adapters' own settings.
    """

    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    model: str | None = None
    model_api: ModelApi = "responses"
    model_timeout: float = 60.0
    model_retries: int = 2
    instructions: str = DEFAULT_INSTRUCTIONS
    name: str = "bot"
    db_path: str = "memory.sqlite3"
    database_url: str | None = field(default=None, repr=False)
    """A PostgreSQL URL; when set, memory lives there instead of in `db_path`."""
    database_lock_url: str | None = field(default=None, repr=False)
    """Where a worker's thread-lock connection goes, when not to `database_url` (which may
    pass through a transaction-mode pooler; the lock connection needs a session of its own)."""
    database_pool: int | None = None
    """Pooled PostgreSQL connections per worker, for short transactions; None: 10."""
    thread_wait: float = 120.0
    """Seconds a message waits for its thread's earlier turn before the bot says it is busy."""
    context_tokens: int = 32_000
    """What one model request may carry in all: instructions, summary, history, the new
    message and room for the answer. Set it below the model's context window."""
    max_output_tokens: int | None = None
    """The longest answer, sent to the model as its limit; None keeps `OUTPUT_RESERVE` free."""
    summary_model: str | None = None
    summary_tokens: int = 1_000
    memory_scope: MemoryScope = "thread"
    max_concurrency: int = 8
    retention_days: float | None = None
    tracing: bool = False
    log_level: str | None = None
    max_input_chars: int = 16_000
    rate_limit_per_minute: int = 20
    reply_to_bots: bool = False
    shutdown_grace: float = 30.0
    """Seconds a stop may take in all: turns finish, replies are delivered, adapters disconnect."""
    profiles: str | None = None
    """A TOML file of profiles (`BOT_PROFILES`): an agent per channel; None: one agent."""
    mcp_config: str | None = None
    """A JSON file of MCP servers in the common `mcpServers` shape; None for no MCP tools."""
    tool_timeout: float = 30.0
    """Seconds one tool call may take before the model is told it timed out."""
    approval_timeout: float = 900.0
    """Seconds a tool call waits for Approve or Reject before it is rejected."""
    approvers: Approvers = "asker"
    """Who may approve a tool call: the person who asked, or anyone allowed to use the bot."""
    vision: Vision = "auto"
    """Whether images reach the model: `auto` sends them until the model server says the model
    cannot see (then, for a day, on every worker, a note instead); `on` always, `off` never."""
    max_attachment_bytes: int = 10_000_000
    """The largest file the bot downloads; bigger ones get a note instead."""
    metrics_port: int | None = None
    """Where `/healthz`, `/readyz` and `/metrics` are served (on every interface); None: off."""
    metrics_host: str = "0.0.0.0"
    """The address the metrics server binds; `127.0.0.1` keeps it private to the machine."""
    log_format: LogFormat = "text"
    """`json` writes one JSON object per log line, for log collectors."""
    daily_tokens_per_user: int | None = None
    """Model tokens (in + out) one person may spend per UTC day; None for no budget."""
    web_port: int | None = None
    """Where the operator page is served (`bot/web`); None: not served by the bot."""
    web_host: str = "127.0.0.1"
    """The address the operator page listens on; any other than loopback needs a password."""
    web_password: str | None = field(default=None, repr=False)
    """What signs an operator in; without it the page is served on loopback only."""
    web_base_url: str | None = None
    """The address operators open, when a proxy serves the page (its cookie is `Secure` when
    it is https)."""
    environment: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """Every setting as read (blank values dropped), for adapters to parse their own."""

    @property
    def output_reserve(self) -> int:
        """Tokens of each request's budget kept free for the answer."""
        return self.max_output_tokens or OUTPUT_RESERVE

    @property
    def pool_size(self) -> int:
        """Pooled connections: they serve short transactions only (a turn's planning reads
        and its commit; thread locks live on one more connection), so the number of turns in
        flight does not size them."""
        return self.database_pool or 10

    @property
    def memory_location(self) -> str:
        """What to open: the PostgreSQL URL when one is set, else the SQLite file."""
        return self.database_url or self.db_path

    @property
    def secrets(self) -> tuple[str, ...]:
        """The core's values that must never be shown in logs or messages."""
        found = [value for value in (self.openai_api_key, self.web_password) if value]
        for url in (self.database_url, self.database_lock_url):
            password = urlsplit(url).password if url else None
            if password:
                found.append(password)
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


def _retention(raw: str) -> float | None:
    if raw.lower() in {"off", "none", "0"}:
        return None
    try:
        return positive_float(raw, "days")
    except ValueError:
        raise ValueError("must be a number of days above 0, or 'off'") from None


def _model_api(raw: str) -> ModelApi:
    lowered = raw.lower().replace("-", "_")
    if lowered == "responses":
        return "responses"
    if lowered == "chat_completions":
        return "chat_completions"
    raise ValueError("must be 'responses' or 'chat_completions'")


def _memory_scope(raw: str) -> MemoryScope:
    lowered = raw.lower()
    if lowered == "thread":
        return "thread"
    if lowered == "channel":
        return "channel"
    if lowered == "user":
        return "user"
    raise ValueError("must be 'thread', 'channel' or 'user'")


def _database_url(raw: str) -> str:
    if urlsplit(raw).scheme.split("+")[0] not in {"postgresql", "postgres"}:
        raise ValueError("must be a postgresql://user@host/database URL")
    return raw


def _vision(raw: str) -> Vision:
    lowered = raw.lower()
    if lowered == "auto":
        return "auto"
    if lowered == "on":
        return "on"
    if lowered == "off":
        return "off"
    raise ValueError("must be 'auto', 'on' or 'off'")


def _approvers(raw: str) -> Approvers:
    lowered = raw.lower()
    if lowered == "asker":
        return "asker"
    if lowered == "allowed":
        return "allowed"
    raise ValueError("must be 'asker' (the person who asked) or 'allowed' (anyone allowed)")


def _log_format(raw: str) -> LogFormat:
    lowered = raw.lower()
    if lowered == "text":
        return "text"
    if lowered == "json":
        return "json"
    raise ValueError("must be 'text' or 'json'")


def _budget(raw: str) -> int | None:
    if raw.lower() in {"off", "none", "0"}:
        return None
    try:
        return positive_int(raw.replace("_", "").replace(",", ""))
    except ValueError:
        raise ValueError("must be a number of tokens above 0, or 'off'") from None


def _web_password(raw: str) -> str:
    if len(raw) < 8:
        raise ValueError("must be at least 8 characters")
    return raw


def _web_url(raw: str) -> str:
    if urlsplit(raw).scheme not in {"http", "https"} or not urlsplit(raw).netloc:
        raise ValueError("must be the page's address, like https://bot.example.com")
    return raw.rstrip("/")


def _log_level(raw: str) -> str | None:
    upper = raw.upper()
    if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
    return upper


# Each field's variable and parser; the default comes from the dataclass above.
_VARIABLES: dict[str, tuple[str, Any]] = {
    "openai_api_key": ("OPENAI_API_KEY", text),
    "openai_base_url": ("OPENAI_BASE_URL", text),
    "model": ("BOT_MODEL", text),
    "model_api": ("BOT_MODEL_API", _model_api),
    "model_timeout": ("BOT_MODEL_TIMEOUT", positive_float),
    "model_retries": ("BOT_MODEL_RETRIES", non_negative_int),
    "instructions": ("BOT_INSTRUCTIONS", lambda raw: raw.replace("\\n", "\n")),
    "name": ("BOT_NAME", text),
    "db_path": ("BOT_DB_PATH", text),
    "database_url": ("BOT_DATABASE_URL", _database_url),
    "database_lock_url": ("BOT_DATABASE_LOCK_URL", _database_url),
    "database_pool": ("BOT_DATABASE_POOL", positive_int),
    "thread_wait": ("BOT_THREAD_WAIT", positive_float),
    "context_tokens": ("BOT_CONTEXT_TOKENS", positive_int),
    "max_output_tokens": ("BOT_MAX_OUTPUT_TOKENS", positive_int),
    "summary_model": ("BOT_SUMMARY_MODEL", text),
    "summary_tokens": ("BOT_SUMMARY_TOKENS", positive_int),
    "memory_scope": ("BOT_MEMORY_SCOPE", _memory_scope),
    "max_concurrency": ("BOT_MAX_CONCURRENCY", positive_int),
    "retention_days": ("BOT_RETENTION_DAYS", _retention),
    "tracing": ("BOT_TRACING", boolean),
    "log_level": ("BOT_LOG_LEVEL", _log_level),
    "max_input_chars": ("BOT_MAX_INPUT_CHARS", positive_int),
    "rate_limit_per_minute": ("BOT_RATE_LIMIT", non_negative_int),
    "reply_to_bots": ("BOT_REPLY_TO_BOTS", boolean),
    "shutdown_grace": ("BOT_SHUTDOWN_GRACE", positive_float),
    "profiles": ("BOT_PROFILES", text),
    "mcp_config": ("BOT_MCP_CONFIG", text),
    "tool_timeout": ("BOT_TOOL_TIMEOUT", positive_float),
    "approval_timeout": ("BOT_APPROVAL_TIMEOUT", positive_float),
    "approvers": ("BOT_APPROVERS", _approvers),
    "vision": ("BOT_VISION", _vision),
    "max_attachment_bytes": ("BOT_MAX_ATTACHMENT_BYTES", positive_int),
    "metrics_port": ("BOT_METRICS_PORT", port),
    "metrics_host": ("BOT_METRICS_HOST", text),
    "log_format": ("BOT_LOG_FORMAT", _log_format),
    "daily_tokens_per_user": ("BOT_DAILY_TOKENS_PER_USER", _budget),
    "web_port": ("BOT_WEB_PORT", port),
    "web_host": ("BOT_WEB_HOST", text),
    "web_password": ("BOT_WEB_PASSWORD", _web_password),
    "web_base_url": ("BOT_WEB_BASE_URL", _web_url),
}


def load_config(
    environ: Mapping[str, str] | None = None, dotenv_path: str | Path | None = ".env"
) -> Config:
    """Build the configuration from `.env` overlaid by the real environment.

    The process environment wins over `.env`, as deployments expect. Nothing is written back
    to `os.environ`, so the result is the only place settings live.
    """
    from_file: dict[str, str] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        from_file = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
    environment = os.environ if environ is None else environ
    merged = Settings(
        {**from_file, **environment},
        file=str(dotenv_path or ".env"),
        from_file=from_file.keys() - environment.keys(),
    )
    return config_from_mapping(merged)


def config_from_mapping(env: Mapping[str, str]) -> Config:
    """Parse and validate the core's settings from a plain mapping (blank values count as unset).

    A plain mapping counts as the environment in messages; `load_config` passes `Settings`,
    which knows the variables its file set.
    """
    values = Settings(
        {k: v.strip() for k, v in env.items() if v is not None and v.strip()},
        file=env.file if isinstance(env, Settings) else ".env",
        from_file=env.from_file if isinstance(env, Settings) else (),
    )
    defaults: dict[str, Any] = {f.name: f.default for f in fields(Config) if f.name in _VARIABLES}
    parsed: dict[str, Any] = {
        name: read(values, key, parse, defaults[name]) for name, (key, parse) in _VARIABLES.items()
    }
    if "BOT_MODEL_API" not in values and parsed["openai_base_url"]:
        # Compatible servers rarely speak the Responses API, so pick the API that will work.
        parsed["model_api"] = "chat_completions"
    config = Config(**parsed, environment=values)
    fixed = config.output_reserve + config.summary_tokens + MIN_HISTORY_TOKENS
    if config.context_tokens < fixed:
        raise ConfigError(
            f"BOT_CONTEXT_TOKENS must be at least {fixed:,}: the answer "
            f"({config.output_reserve:,}), the summary ({config.summary_tokens:,}) and "
            f"{MIN_HISTORY_TOKENS:,} for the conversation itself."
        )
    return config
