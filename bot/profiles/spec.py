"""What a profiles file (`BOT_PROFILES`) says, as plain records: read once, never changed.

A profile is a set of overrides of the global settings; what it leaves out (None) comes from
them, which are themselves the profile named `default`. Rules say which profile a place gets,
first match wins; `[admins]` says who may switch a place's profile in the chat besides the
platform's own administrators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ..config import MemoryScope, ModelApi, Vision

DEFAULT: Final = "default"
"""The profile made of the global settings; a file may refine it with `[profiles.default]`."""


@dataclass(frozen=True)
class ProfileSpec:
    """One `[profiles.NAME]` table; every field None means "as the global settings say"."""

    name: str
    instructions: str | None = None
    model: str | None = None
    base_url: str | None = None
    """Any OpenAI-compatible server; with it and no `model_api`, Chat Completions is used."""
    api_key_env: str | None = None
    """The NAME of the environment variable holding the endpoint's key (never the key)."""
    model_api: ModelApi | None = None
    tools: tuple[str, ...] | None = None
    """MCP server names (`BOT_MCP_CONFIG`) and plugin names offered; () offers none; None all."""
    memory_scope: MemoryScope | None = None
    context_tokens: int | None = None
    daily_tokens_per_user: int | None = None
    """0 for no budget in this profile (the global setting's "off")."""
    summary_model: str | None = None
    vision: Vision | None = None


@dataclass(frozen=True)
class Rule:
    """One `[[rules]]` table: every key given must match the place (None matches anything)."""

    number: int
    """Its position in the file, from 1, for messages."""
    profile: str
    platform: str | None = None
    workspace: str | None = None
    """`guild` (Discord) or `team` (Slack): the same thing on each platform."""
    channel: str | None = None
    dm: bool | None = None


@dataclass(frozen=True)
class Admins:
    """`[admins]`: who may switch profiles besides each platform's own administrators."""

    discord_roles: frozenset[str] = frozenset()
    """Role names or IDs."""
    discord_users: frozenset[str] = frozenset()
    slack_users: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProfileBook:
    """A whole profiles file. Without one, a book of nothing but `default`."""

    source: str | None = None
    """The file it was read from, for messages; None without a file."""
    profiles: dict[str, ProfileSpec] = field(
        default_factory=lambda: {DEFAULT: ProfileSpec(DEFAULT)}
    )
    """By name, in the file's order, `default` always first."""
    rules: tuple[Rule, ...] = ()
    admins: Admins = field(default_factory=Admins)
