"""A profile, built: its agent, model client, memory planner, summaries and budget.

A profile is the global settings with its overrides applied (`profile_config`), so every part
is built by the same functions as without a profiles file, and `default` is exactly what the
bot was before profiles existed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from agents import FunctionTool, RunConfig, Tool

from ..agent import (
    ModelClients,
    agent_instructions,
    build_agent,
    build_model,
    build_summary_agent,
    model_name,
)
from ..commands import CommandRegistry
from ..config import Config
from ..memory.planner import MemoryPlanner, MemorySettings
from ..memory.summary import Summarizer, SummaryKeeper
from ..ops.budget import Clock, DailyBudget
from ..runs.agent_runs import AgentRuns
from ..runs.approvals import ApprovalDesk
from ..runs.attachments import AttachmentReader, AttachmentSettings
from ..runs.attempts import TurnAttempts
from ..runs.vision import BlindModels
from ..storage import Store
from ..tools import needs_approval
from ..tools.plugins import tool_name
from .spec import DEFAULT, ProfileSpec

OPENAI_HOST = "api.openai.com"
"""What `/profile` shows as the endpoint when none is set: the openai client's default."""


@dataclass(frozen=True)
class Profile:
    """Everything a turn under one profile runs with."""

    name: str
    config: Config
    """The global settings with the profile's overrides applied."""
    tools: tuple[str, ...]
    """The names of the tools offered beyond the bot's own `search_thread`."""
    planner: MemoryPlanner
    runs: AgentRuns
    attempts: TurnAttempts
    summaries: SummaryKeeper
    attachments: AttachmentReader
    budget: DailyBudget
    commands: CommandRegistry
    may_pause: bool
    """Whether any of its tools needs approval, so a turn looks for a pending one to cancel."""

    @property
    def model(self) -> str:
        return model_name(self.config)

    @property
    def memory_scope(self) -> str:
        return self.config.memory_scope

    @property
    def recorded_as(self) -> str | None:
        """The name usage records carry: None for `default` (as rows from before profiles)."""
        return None if self.name == DEFAULT else self.name

    @property
    def endpoint_host(self) -> str:
        """The model server's host (and port): never its key, path or query string."""
        url = self.config.openai_base_url
        return (urlsplit(url).netloc.rpartition("@")[2] if url else "") or OPENAI_HOST


def profile_config(config: Config, spec: ProfileSpec) -> Config:
    """The global settings with the profile's overrides applied.

    An endpoint's key travels only with the endpoint it is named for: a profile with its own
    `base_url` and no `api_key_env` sends no key rather than the global one to another host.
    """
    changes: dict[str, Any] = {
        name: value
        for name, value in (
            ("instructions", spec.instructions),
            ("model", spec.model),
            ("model_api", spec.model_api),
            ("memory_scope", spec.memory_scope),
            ("context_tokens", spec.context_tokens),
            ("summary_model", spec.summary_model),
            ("vision", spec.vision),
        )
        if value is not None
    }
    if spec.daily_tokens_per_user is not None:
        changes["daily_tokens_per_user"] = spec.daily_tokens_per_user or None
    if spec.base_url is not None:
        changes["openai_base_url"] = spec.base_url
        changes["openai_api_key"] = None
    if spec.api_key_env is not None:
        changes["openai_api_key"] = config.environment.get(spec.api_key_env)
    return replace(config, **changes)


def offered(
    tools: Sequence[Tool], sources: Mapping[str, str], wanted: Sequence[str] | None
) -> list[Tool]:
    """The tools a profile offers: all without a `tools` list; else those whose server or
    plugin (`sources`, by tool name) or own name it lists."""
    if wanted is None:
        return list(tools)
    names = set(wanted)
    return [
        tool for tool in tools if tool_name(tool) in names or sources.get(tool_name(tool)) in names
    ]


@dataclass(frozen=True)
class Shared:
    """What every profile's parts share."""

    store: Store
    clients: ModelClients
    run_config: RunConfig
    desk: ApprovalDesk
    budget: DailyBudget
    own_tools: Sequence[Tool]
    """The bot's own tools (`search_thread`), offered under every profile."""
    tools: Sequence[Tool]
    sources: Mapping[str, str]
    clock: Clock


def build_profile(config: Config, spec: ProfileSpec, shared: Shared) -> Profile:
    """One profile's parts, from the global settings and its overrides."""
    settings = profile_config(config, spec)
    client = shared.clients.for_config(settings)
    store = shared.store
    tools = [*shared.own_tools, *offered(shared.tools, shared.sources, spec.tools)]
    recorded = None if spec.name == DEFAULT else spec.name
    planner = build_planner(settings, store, tools)
    summary_model = settings.summary_model or model_name(settings)
    summarizer = Summarizer(
        build_summary_agent(settings, build_model(settings, client, summary_model)),
        shared.run_config,
        bot_name=settings.name,
        model=summary_model,
        profile=recorded,
    )
    budget = shared.budget.limited(settings.daily_tokens_per_user)
    runs = AgentRuns(
        agent=build_agent(settings, build_model(settings, client), tools),
        store=store,
        run_config=shared.run_config,
        desk=shared.desk,
        model_name=model_name(settings),
        measured=planner.measured,
        spent=budget.spend,
        profile=recorded,
    )
    attachments = AttachmentReader(
        AttachmentSettings(vision=settings.vision, max_bytes=settings.max_attachment_bytes),
        BlindModels(store, endpoint=str(client.base_url), clock=shared.clock),
    )
    summaries = SummaryKeeper(store, planner, summarizer)
    return Profile(
        name=spec.name,
        config=settings,
        tools=tuple(tool_name(tool) for tool in tools[len(shared.own_tools) :]),
        planner=planner,
        runs=runs,
        attempts=TurnAttempts(
            planner=planner,
            runs=runs,
            attachments=attachments,
            summarize=summaries.request,
            model_name=model_name(settings),
        ),
        summaries=summaries,
        attachments=attachments,
        budget=budget,
        commands=CommandRegistry(),
        may_pause=needs_approval(tools),
    )


def build_planner(config: Config, store: Store, tools: Sequence[Tool] = ()) -> MemoryPlanner:
    """The turn planner for the configured budget and the agent's instructions and tools."""
    return MemoryPlanner(
        store,
        MemorySettings(
            context_tokens=config.context_tokens,
            output_reserve=config.output_reserve,
            summary_tokens=config.summary_tokens,
            max_input_chars=config.max_input_chars,
        ),
        instructions=agent_instructions(config),
        fixed_chars=sum(
            len(tool.description) + len(json.dumps(tool.params_json_schema))
            for tool in tools
            if isinstance(tool, FunctionTool)
        ),
    )
