"""Example tools for memorybot, installed with `pip install -e examples/plugin`.

The bot finds them through the `memorybot.tools` entry point in this package's
`pyproject.toml`, which names `tools` below. Each is an Agents SDK `@function_tool`: its name,
docstring and typed parameters become what the model sees, so write them for the model.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from agents import FunctionTool, function_tool

__all__ = ["roll_dice", "tools", "utc_now"]


@function_tool
def roll_dice(sides: int = 6) -> str:
    """Roll one fair die.

    Args:
        sides: How many sides the die has (at least 2).
    """
    if sides < 2:
        # Returned, not raised: the model reads it and can try again.
        return "A die needs at least 2 sides."
    return f"Rolled a d{sides}: {random.randint(1, sides)}"


@function_tool
def utc_now() -> str:
    """The current date and time in UTC, in ISO 8601 form."""
    return datetime.now(UTC).isoformat(timespec="seconds")


tools: list[FunctionTool] = [roll_dice, utc_now]
