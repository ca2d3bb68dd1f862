"""Measuring what model calls carry and cost, from what the SDK and the provider report."""

from __future__ import annotations

import json
from typing import Any

from agents import Agent, RunContextWrapper, RunHooks, TResponseInputItem
from agents.usage import Usage as SdkUsage

from ..storage import Usage


class UsageMeter(RunHooks[Any]):
    """Run hooks that add up the characters each model request carries.

    Characters are measured as the store measures items (JSON), so dividing the tokens the
    provider reports by them gives the thread's tokens per stored character.
    """

    def __init__(self, *, counting: bool = True) -> None:
        """`counting=False` leaves `input_chars` at 0, which keeps the run out of the thread's
        tokens-per-character figure: for runs whose tokens are not all in their characters
        (images), or whose characters are not all counted here (a resumed run)."""
        self.input_chars = 0
        self._counting = counting

    async def on_llm_start(
        self,
        context: RunContextWrapper[Any],
        agent: Agent[Any],
        system_prompt: str | None,
        input_items: list[TResponseInputItem],
    ) -> None:
        if not self._counting:
            return
        self.input_chars += len(system_prompt or "")
        self.input_chars += sum(len(json.dumps(item, default=str)) for item in input_items)

    def usage(self, reported: SdkUsage, model: str | None, profile: str | None = None) -> Usage:
        """The run's usage as the store records it (`profile` None: `default`)."""
        return Usage(
            profile=profile,
            model=model,
            input_tokens=reported.input_tokens,
            cached_tokens=reported.input_tokens_details.cached_tokens or 0,
            output_tokens=reported.output_tokens,
            input_chars=self.input_chars,
        )
