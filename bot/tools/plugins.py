"""Tools from installed packages: the `memorybot.tools` entry-point group.

A package adds tools without touching the bot by declaring, in its `pyproject.toml`,

    [project.entry-points."memorybot.tools"]
    tickets = "my_package:tools"

where `tools` is an SDK `Tool` (e.g. a `@function_tool`), a list of them, or a function taking
no arguments that returns either. A plugin that fails to load is logged in one line and left out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from agents import Tool
from agents.tool import FunctionTool

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "memorybot.tools"


def plugin_names(found: Callable[[], Iterable[EntryPoint]] | None = None) -> list[str]:
    """The installed plugins' names, without loading them (a profiles file names them)."""
    points = found() if found is not None else entry_points(group=ENTRY_POINT_GROUP)
    return sorted(point.name for point in points)


def plugin_tools(
    found: Callable[[], Iterable[EntryPoint]] | None = None,
) -> list[tuple[str, Tool]]:
    """Every installed plugin's tools, in entry-point name order, each with its plugin's name."""
    points = found() if found is not None else entry_points(group=ENTRY_POINT_GROUP)
    tools: list[tuple[str, Tool]] = []
    for point in sorted(points, key=lambda ep: ep.name):
        try:
            loaded = _tools_of(point.load())
        except Exception as exc:
            logger.warning(
                "Tool plugin %r (%s) did not load, skipping it: %s", point.name, point.value, exc
            )
            continue
        logger.info("Tool plugin %s: %s", point.name, ", ".join(map(tool_name, loaded)))
        tools.extend((point.name, tool) for tool in loaded)
    return tools


def _tools_of(value: Any) -> list[Tool]:
    if callable(value) and not isinstance(value, FunctionTool):
        value = value()
    items = [value] if isinstance(value, FunctionTool) else list(value)
    tools: list[Tool] = []
    for item in items:
        # Function tools only: hosted tools run on OpenAI's side and only on its Responses API.
        if not isinstance(item, FunctionTool):
            raise TypeError(f"expected @function_tool tools, got {type(item).__name__}")
        tools.append(item)
    return tools


def tool_name(tool: Tool) -> str:
    """The name the model calls a tool by."""
    return getattr(tool, "name", type(tool).__name__)
