"""Which profile a place gets from the profiles file's rules, and who may switch it in the chat."""

from __future__ import annotations

from collections.abc import Sequence

from cachetools import LRUCache

from ..messages import IncomingMessage, Place
from .spec import Admins, Rule

_PLACES = 10_000
"""Places whose matching rule is remembered, so a message costs a dictionary look-up rather
than a walk over every rule (files of fifty rules are not unusual)."""


class ProfileRules:
    """The file's `[[rules]]`, first match wins."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = tuple(rules)
        self._matched: LRUCache[tuple[str, Place], Rule | None] = LRUCache(maxsize=_PLACES)

    def match(self, platform: str, place: Place) -> Rule | None:
        """The first rule that matches the place; None when none does."""
        key = (platform, place)
        try:
            return self._matched[key]
        except KeyError:
            pass
        found = next((rule for rule in self._rules if _matches(rule, platform, place)), None)
        self._matched[key] = found
        return found


def _matches(rule: Rule, platform: str, place: Place) -> bool:
    return (
        (rule.platform is None or rule.platform == platform)
        and (rule.workspace is None or rule.workspace == place.workspace)
        and (rule.channel is None or rule.channel == place.channel)
        and (rule.dm is None or rule.dm == place.dm)
    )


def may_switch(admins: Admins, message: IncomingMessage) -> bool:
    """Whether the author may switch the profile where they wrote: the platform's own
    administrators (Manage Server, workspace admins and owners, anyone at the console), and
    the people and roles `[admins]` names."""
    if message.author_admin:
        return True
    if message.platform == "discord":
        return message.author_id in admins.discord_users or bool(
            message.author_roles & admins.discord_roles
        )
    if message.platform == "slack":
        return message.author_id in admins.slack_users
    return False
