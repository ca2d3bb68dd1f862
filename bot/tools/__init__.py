"""The agent's tools beyond its own: MCP servers from `BOT_MCP_CONFIG` and installed plugins.

`open_toolbox()` connects and loads them once at start-up; every tool gets the per-call
timeout `BOT_TOOL_TIMEOUT` (unless its author set one), after which the model reads a
"timed out" result instead of the turn failing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint

from agents import Tool
from agents.tool import FunctionTool

from ..config import Config
from .mcp import SupervisedServer, close_servers, connect_servers
from .mcp_config import ServerSpec, read_mcp_config
from .plugins import ENTRY_POINT_GROUP, plugin_names, plugin_tools, tool_name

__all__ = [
    "ENTRY_POINT_GROUP",
    "ServerSpec",
    "Toolbox",
    "needs_approval",
    "open_toolbox",
    "plugin_names",
    "read_mcp_config",
    "tool_names",
]

logger = logging.getLogger(__name__)


@dataclass
class Toolbox:
    """The configured tools and the servers behind them."""

    tools: list[Tool] = field(default_factory=list)
    servers: list[SupervisedServer] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    """Each tool's server or plugin name, by tool name (what a profile's `tools` lists)."""


@asynccontextmanager
async def open_toolbox(
    config: Config,
    *,
    reserved: Iterable[str] = (),
    plugins: Callable[[], Iterable[EntryPoint]] | None = None,
) -> AsyncIterator[Toolbox]:
    """Connect the MCP servers and load the plugins; disconnect on exit.

    Args:
        config: `mcp_config` and `tool_timeout` are read.
        reserved: Names the bot's own tools use; a plugin or server tool by the same name is
            left out (with a log line) rather than shadowing them.
        plugins: Where entry points come from (tests); the installed ones by default.
    """
    specs = read_mcp_config(config.mcp_config, config.environment) if config.mcp_config else []
    servers, server_tools = await connect_servers(specs, tool_timeout=config.tool_timeout)
    try:
        found = [*plugin_tools(plugins), *server_tools]
        tools = _unique([tool for _, tool in found], set(reserved))
        for tool in tools:
            if isinstance(tool, FunctionTool) and tool.timeout_seconds is None:
                tool.timeout_seconds = config.tool_timeout
        sources: dict[str, str] = {}
        for source, tool in found:
            sources.setdefault(tool_name(tool), source)
        yield Toolbox(tools=tools, servers=servers, sources=sources)
    finally:
        await close_servers(servers)


def _unique(tools: Sequence[Tool], taken: set[str]) -> list[Tool]:
    kept: list[Tool] = []
    for tool in tools:
        name = tool_name(tool)
        if name in taken:
            logger.warning("Two tools are named %r; keeping the first, leaving out the other", name)
            continue
        taken.add(name)
        kept.append(tool)
    return kept


def tool_names(tools: Sequence[Tool]) -> list[str]:
    return [tool_name(tool) for tool in tools]


def needs_approval(tools: Sequence[Tool]) -> bool:
    """Whether any tool may pause a run for approval (so the core checks for pending ones)."""
    return any(getattr(tool, "needs_approval", False) is not False for tool in tools)
