"""`/profile`: show the profile answering here, or switch the place to another (admins)."""

from __future__ import annotations

from ..commands import CommandArgument, CommandContext
from .desk import InForce, ProfileDesk
from .kits import Profile
from .spec import DEFAULT

NOT_ALLOWED = (
    "Sorry, only admins can switch the profile here (Discord: Manage Server or an admin role; "
    "Slack: workspace admins). {prefix}profile shows the one in use."
)
NOWHERE = "Profiles cannot be switched here."


class ProfileCommand:
    name = "profile"
    description = "Show the profile answering here; admins: switch this channel to another."
    argument: CommandArgument | None = CommandArgument(
        "name", "The profile to switch to (default: back to the profiles file's rule)", kind="word"
    )

    def __init__(self, desk: ProfileDesk) -> None:
        self._desk = desk

    async def run(self, ctx: CommandContext) -> str:
        message = ctx.message
        if message is None:
            return NOWHERE
        if not ctx.args:
            return self._describe(await self._desk.in_force(message), ctx.prefix)
        name = ctx.args.strip()
        names = self._desk.names()
        if name not in names:
            return f"There is no profile “{name}”. Profiles: {', '.join(names)}."
        if message.place.key(message.platform) is None:
            return NOWHERE
        if not self._desk.may_switch(message):
            return NOT_ALLOWED.format(prefix=ctx.prefix)
        await self._desk.choose(message, None if name == DEFAULT else name)
        now = await self._desk.in_force(message)
        if name == DEFAULT:
            return (
                f"Done: the switch made here is dropped, so {_why(now, self._desk.source)} "
                f"applies: {_named(now.profile)}."
            )
        return f"Done: this channel now uses {_named(now.profile)}. Each thread keeps its memory."

    def _describe(self, now: InForce, prefix: str) -> str:
        profile = now.profile
        config = profile.config
        tools = ", ".join(profile.tools) if profile.tools else "none"
        budget = (
            f"{config.daily_tokens_per_user:,} tokens per person a day"
            if config.daily_tokens_per_user
            else "no daily budget"
        )
        scope = {"thread": "each thread", "channel": "each channel", "user": "each person"}
        return "\n".join(
            [
                f"Profile here: {profile.name} ({_why(now, self._desk.source)}).",
                f"Model: {profile.model} at {profile.endpoint_host} ({config.model_api}).",
                f"Tools: {tools} (and searching this thread).",
                f"Memory: one for {scope.get(profile.memory_scope, profile.memory_scope)}; "
                f"{config.context_tokens:,} tokens per request; {budget}.",
                f"Profiles: {', '.join(self._desk.names())}. Admins switch with "
                f"{prefix}profile NAME; {prefix}profile default drops the switch.",
            ]
        )


def _named(profile: Profile) -> str:
    return f"the profile {profile.name} ({profile.model})"


def _why(now: InForce, source: str | None) -> str:
    if now.reason == "chosen":
        return "switched in the chat"
    if now.reason.startswith("rule"):
        return f"{now.reason} of {source}" if source else now.reason
    return "the default"
