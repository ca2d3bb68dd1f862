"""The agent and its model, built once at start-up from the configuration."""

from __future__ import annotations

from typing import Any

from agents import (
    Agent,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
)
from agents.models import get_default_model
from openai import AsyncOpenAI

from .config import Config
from .transcript import SPEAKER_NOTE

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
    )


def build_model(config: Config, client: AsyncOpenAI) -> Model:
    """The configured model on the configured API."""
    name = config.model or get_default_model()
    if config.model_api == "chat_completions":
        return OpenAIChatCompletionsModel(model=name, openai_client=client)
    return OpenAIResponsesModel(model=name, openai_client=client)


def build_agent(config: Config, model: Model) -> Agent[Any]:
    """The bot's agent: the configured instructions plus how to read speaker names."""
    return Agent(
        name=config.name,
        instructions=f"{config.instructions.strip()}\n\n{SPEAKER_NOTE}",
        model=model,
    )


def build_run_config(config: Config) -> RunConfig:
    """Per-run settings; tracing exports nothing unless the owner turned it on."""
    return RunConfig(
        tracing_disabled=not config.tracing,
        workflow_name=f"{config.name} chat turn",
    )
