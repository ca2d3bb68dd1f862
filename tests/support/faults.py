"""Faults that are neither a model nor a storage error: bugs, injected where the core works."""

from __future__ import annotations

from typing import Literal

import pytest

from bot.guards import RateLimiter
from bot.memory.turn_session import TurnSession

Where = Literal["before the turn", "in the turn"]
WHERES: tuple[Where, ...] = ("before the turn", "in the turn")


def inject_bug(monkeypatch: pytest.MonkeyPatch, where: Where) -> None:
    """Make the next messages hit a `KeyError`, before a turn starts or after it streamed."""

    def explode(*args: object, **kwargs: object) -> object:
        raise KeyError("a bug in the bot")

    if where == "before the turn":
        monkeypatch.setattr(RateLimiter, "wait_time", explode)
    else:

        async def explode_async(*args: object) -> None:
            explode()

        monkeypatch.setattr(TurnSession, "commit", explode_async)
