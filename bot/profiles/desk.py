"""Which profile answers a message: a choice made in the chat, else the file's first matching
rule, else `default`; and switching a place's profile, for those allowed to."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ..messages import IncomingMessage
from .choices import ProfileChoices
from .kits import Profile
from .rules import ProfileRules, may_switch
from .spec import DEFAULT, ProfileBook


@dataclass(frozen=True)
class InForce:
    """The profile in force at a place, and why."""

    profile: Profile
    reason: str
    """`chosen` (in the chat), `rule N` (the file's), or `default`."""


class ProfileDesk:
    """The built profiles, and the rules and choices that pick one per place."""

    def __init__(
        self, book: ProfileBook, profiles: Mapping[str, Profile], choices: ProfileChoices
    ) -> None:
        self._book = book
        self._profiles = dict(profiles)
        self._default = self._profiles[DEFAULT]
        self._rules = ProfileRules(book.rules)
        self._choices = choices
        # With nothing but `default` there is nothing to look up, not even chosen profiles.
        self._single = len(self._profiles) == 1

    @property
    def default(self) -> Profile:
        return self._default

    @property
    def source(self) -> str | None:
        """The profiles file, when there is one."""
        return self._book.source

    def __iter__(self) -> Iterator[Profile]:
        return iter(self._profiles.values())

    def names(self) -> list[str]:
        return list(self._profiles)

    def named(self, name: str | None) -> Profile:
        """The profile by its recorded name; `default` for None or a name no longer defined
        (a paused turn from before the file changed)."""
        return self._profiles.get(name or DEFAULT, self._default)

    async def resolve(self, message: IncomingMessage) -> Profile:
        """The profile that answers `message`: chosen in the chat > rule > `default`."""
        if self._single:
            return self._default
        key = message.place.key(message.platform)
        chosen = None if key is None else await self._choices.get(key)
        if chosen is not None and chosen in self._profiles:
            return self._profiles[chosen]
        rule = self._rules.match(message.platform, message.place)
        return self._profiles.get(rule.profile, self._default) if rule else self._default

    async def in_force(self, message: IncomingMessage) -> InForce:
        """What `/profile` shows: the profile at the place, read afresh, and why."""
        key = message.place.key(message.platform)
        chosen = None if key is None or self._single else await self._choices.fresh(key)
        if chosen is not None and chosen in self._profiles:
            return InForce(self._profiles[chosen], "chosen")
        rule = self._rules.match(message.platform, message.place)
        if rule is not None and rule.profile in self._profiles:
            return InForce(self._profiles[rule.profile], f"rule {rule.number}")
        return InForce(self._default, DEFAULT)

    def may_switch(self, message: IncomingMessage) -> bool:
        return may_switch(self._book.admins, message)

    async def choose(self, message: IncomingMessage, name: str | None) -> None:
        """Switch the place `message` was written in to profile `name`; None drops the
        switch. The caller checked the name and the author's standing."""
        key = message.place.key(message.platform)
        if key is None:
            raise ValueError("the message says nothing of its channel")
        await self._choices.choose(key, name, by=f"{message.platform}:{message.author_id}")
