"""The agent and its model, built once at start-up from the configuration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents import (
    Agent,
    Model,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Tool,
    ToolErrorFormatterArgs,
)
from agents.models import get_default_model
from openai import AsyncOpenAI

from .config import Config
from .http_pools import PooledHttpClient
from .memory.search import SEARCH_NOTE
from .memory.summary import SUMMARY_INSTRUCTIONS
from .memory.transcript import SPEAKER_NOTE

# A custom endpoint that ignores keys still makes the openai client demand one.
_PLACEHOLDER_KEY = "not-needed"


def build_client(config: Config) -> AsyncOpenAI:
    """The one HTTP client for every model call; retries and timeouts are the openai client's.

    It retries connection errors, 408/409/429 and 5xx with backoff and honours `Retry-After`,
    which is all the retrying a chat turn wants before telling the user.
    """
    return AsyncOpenAI(
        api_key=config.openai_api_key or _PLACEHOLDER_KEY,
        base_url=config.openai_base_url,
        timeout=config.model_timeout,
        max_retries=config.model_retries,
        # Many turns in flight at once would otherwise share one pool, which does work in
        # proportion to them for every call.
        http_client=PooledHttpClient(timeout=config.model_timeout),
    )


def model_name(config: Config) -> str:
    """The name of the model answering turns."""
    return config.model or get_default_model()


def build_model(config: Config, client: AsyncOpenAI, name: str | None = None) -> Model:
    """The configured model (or the one named) on the configured API."""
    name = name or model_name(config)
    if config.model_api == "chat_completions":
        return OpenAIChatCompletionsModel(model=name, openai_client=client)
    return OpenAIResponsesModel(model=name, openai_client=client)


def agent_instructions(config: Config) -> str:
    """The configured instructions plus how to read speaker names and when to search."""
    return f"{config.instructions.strip()}\n\n{SPEAKER_NOTE}\n\n{SEARCH_NOTE}"


def build_agent(config: Config, model: Model, tools: Sequence[Tool]) -> Agent[Any]:
    """The bot's agent. Each turn runs a copy whose instructions carry the thread's summary."""
    return Agent(
        name=config.name,
        instructions=agent_instructions(config),
        model=model,
        tools=list(tools),
        # Compatible servers send streamed usage only when asked; budgets are measured from it.
        model_settings=ModelSettings(include_usage=True, max_tokens=config.max_output_tokens),
    )


def build_summary_agent(config: Config, model: Model) -> Agent[Any]:
    """The agent that writes rolling summaries, capped at `BOT_SUMMARY_TOKENS`."""
    return Agent(
        name=f"{config.name} summarizer",
        instructions=SUMMARY_INSTRUCTIONS.format(words=int(config.summary_tokens * 0.6)),
        model=model,
        model_settings=ModelSettings(include_usage=True, max_tokens=config.summary_tokens),
    )


TOOL_NOT_AVAILABLE = "The tool {name} is not available here. Answer without it."
"""What the model reads when it calls a tool it was not offered (an MCP allow-list left it
out, or it made one up): a tool result like any failing tool's, so the turn goes on."""


def build_run_config(config: Config) -> RunConfig:
    """Per-run settings; tracing exports nothing unless the owner turned it on."""
    return RunConfig(
        tracing_disabled=not config.tracing,
        workflow_name=f"{config.name} chat turn",
        # The SDK's default ends the run with ModelBehaviorError, which cost the person the
        # whole turn for a call nothing would have run anyway.
        tool_not_found_behavior="return_error_to_model",
        tool_error_formatter=_tool_error,
    )


def _tool_error(args: ToolErrorFormatterArgs[Any]) -> str | None:
    if args.kind == "tool_not_found":
        return TOOL_NOT_AVAILABLE.format(name=args.tool_name)
    return None  # the SDK's own wording


class ModelClients:
    """One openai client per model endpoint (URL and key), shared by every profile using it.

    The client passed in is the caller's (closed by them); those made here for other
    endpoints are closed by `close()`.
    """

    def __init__(self, config: Config, default: AsyncOpenAI | None = None) -> None:
        self._owned: list[AsyncOpenAI] = []
        first = default or self._made(config)
        self._clients = {_endpoint(config): first}

    @property
    def default(self) -> AsyncOpenAI:
        """The global settings' client."""
        return next(iter(self._clients.values()))

    def for_config(self, config: Config) -> AsyncOpenAI:
        """The client for `config`'s endpoint and key, made on first use."""
        key = _endpoint(config)
        if key not in self._clients:
            self._clients[key] = self._made(config)
        return self._clients[key]

    async def close(self) -> None:
        for client in self._owned:
            await client.close()

    def _made(self, config: Config) -> AsyncOpenAI:
        client = build_client(config)
        self._owned.append(client)
        return client


def _endpoint(config: Config) -> tuple[str | None, str | None]:
    return (config.openai_base_url, config.openai_api_key)
