"""A real core on a real store and the real openai client, pointed at the fake model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents import Tool

from bot.agent import ModelClients, build_client
from bot.app import build_core
from bot.config import Config
from bot.core import Core
from bot.ops.budget import Clock, utc_now
from bot.ops.metrics import Metrics
from bot.profiles.spec import ProfileBook
from bot.storage import Store, open_store
from tests.fakes.openai_server import FakeOpenAI


def make_config(
    fake: FakeOpenAI,
    db_path: str | Path = ":memory:",
    *,
    environment: dict[str, str] | None = None,
    **overrides: Any,
) -> Config:
    """Settings that point the real openai client at the fake server.

    `environment` holds variables read by adapters (`DISCORD_*`, `SLACK_*`), as a .env would.
    """
    settings: dict[str, Any] = {
        "openai_api_key": "sk-test-not-a-real-key",
        "openai_base_url": fake.base_url,
        "model": "fake-model",
        "model_api": "chat_completions",
        "model_retries": 0,
        "model_timeout": 10.0,
        "db_path": str(db_path),
        # Tests send bursts from one author; the rate limit has tests of its own.
        "rate_limit_per_minute": 0,
    }
    settings.update(overrides)
    return Config(**settings, environment=environment or {})


class BotParts:
    """A real core on a real store and the real openai client, closed in reverse order.

    With `metrics_port` set in the config (any value: nothing is served here), the core
    reports to `metrics`, as `python -m bot` wires it.
    """

    def __init__(
        self,
        config: Config,
        tools: Sequence[Tool] = (),
        *,
        clock: Clock = utc_now,
        profiles: ProfileBook | None = None,
        tool_sources: dict[str, str] | None = None,
        choices_refresh: float = 10.0,
    ) -> None:
        self.config = config
        self.tools = list(tools)
        self.clock = clock
        self.profiles = profiles
        self.tool_sources = tool_sources
        self.choices_refresh = choices_refresh
        self.client = build_client(config)
        # The profiles' other model servers get clients of their own, closed with these.
        self.clients = ModelClients(config, self.client)
        self.metrics = None if config.metrics_port is None else Metrics()
        self.store: Store
        self.core: Core

    async def start(self) -> BotParts:
        self.store = await open_store(
            self.config.memory_location, pool_size=self.config.database_pool or 4
        )
        self.core = build_core(
            self.config,
            self.store,
            self.clients,
            tools=self.tools,
            clock=self.clock,
            metrics=self.metrics,
            profiles=self.profiles,
            tool_sources=self.tool_sources,
            choices_refresh=self.choices_refresh,
        )
        return self

    async def close(self) -> None:
        await self.store.close()
        await self.clients.close()
        await self.client.close()
