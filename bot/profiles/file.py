"""Reading a profiles file (`BOT_PROFILES`, TOML) into a `ProfileBook`, one clear line per mistake.

TOML because Python reads it without a dependency (`tomllib`) and people write it by hand. The
file is small and read once at start-up, before anything connects, so it is read synchronously.
Every message names the file and where: the TOML line of a syntax error, the profile's name,
or the rule's number.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import MIN_HISTORY_TOKENS, Config
from ..settings import ConfigError
from .spec import DEFAULT, Admins, ProfileBook, ProfileSpec, Rule

PLATFORMS = ("discord", "slack", "console")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        lowered = _text(value).lower().replace("-", "_")
        if lowered not in allowed:
            raise ValueError(f"must be {' or '.join(repr(a) for a in allowed)}")
        return lowered

    return parse


def _count(least: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        # TOML's true is a Python int: a budget of `true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"must be a whole number of at least {least}")
        return value

    return parse


def _url(value: Any) -> str:
    url = _text(value)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return url


def _variable(value: Any) -> str:
    if not isinstance(value, str) or not _VARIABLE.fullmatch(value) or _looks_like_a_key(value):
        # Never echo it: what is not a variable's name may well be the key itself.
        raise ValueError(
            "must be the NAME of the environment variable holding the key (e.g. GEMINI_API_KEY), "
            "never the key itself"
        )
    return value


def _looks_like_a_key(value: str) -> bool:
    """Long, with lower case and digits: a Gemini key (`AIza...`) passes for a variable name,
    and a message repeating it would put the key in a log."""
    return len(value) >= 24 and any(c.islower() for c in value) and any(c.isdigit() for c in value)


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError('must be a list of names, e.g. ["orders"]')
    return tuple(value)


def _ids(value: Any) -> frozenset[str]:
    # IDs pasted without quotes are TOML integers: exact in Python, so kept as their digits.
    if not isinstance(value, list) or not all(_is_id(v) for v in value):
        raise ValueError('must be a list of names or IDs, e.g. ["Moderators"]')
    return frozenset(str(v) for v in value)


def _is_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and bool(value.strip()))


def _id(value: Any) -> str:
    if not _is_id(value):
        raise ValueError('must be an ID in quotes, e.g. "987654321"')
    return str(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


_PROFILE_KEYS: dict[str, Callable[[Any], Any]] = {
    "instructions": _text,
    "model": _text,
    "base_url": _url,
    "api_key_env": _variable,
    "model_api": _choice("responses", "chat_completions"),
    "tools": _names,
    "memory_scope": _choice("thread", "channel", "user"),
    "context_tokens": _count(1),
    "daily_tokens_per_user": _count(0),
    "summary_model": _text,
    "vision": _choice("auto", "on", "off"),
}
_RULE_KEYS: dict[str, Callable[[Any], Any]] = {
    "profile": _text,
    "platform": _choice(*PLATFORMS),
    "guild": _id,
    "team": _id,
    "channel": _id,
    "dm": _flag,
}
_ADMIN_KEYS: dict[str, Callable[[Any], Any]] = {
    "discord_roles": _ids,
    "discord_users": _ids,
    "slack_users": _ids,
}
_TOP = ("profiles", "rules", "admins")


def load_profiles(
    path: str | None,
    *,
    environment: Mapping[str, str],
    tool_names: Collection[str] | None,
    config: Config | None = None,
) -> ProfileBook:
    """The file at `path` read and checked; `ProfileBook()` (only `default`) for None.

    Args:
        path: The file, as `BOT_PROFILES` gives it (relative to the current folder).
        environment: The settings as read, where each `api_key_env` must be set.
        tool_names: The MCP server and plugin names that are configured, which a profile's
            `tools` may name; None to leave them unchecked.
        config: The global settings, whose answer and summary reserves a profile's
            `context_tokens` must leave room for; None to check only that it is positive.

    Raises:
        ConfigError: One line naming the file and where it is wrong.
    """
    if path is None:
        return ProfileBook()
    where = f"BOT_PROFILES ({path})"
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text.") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror or exc}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: {_syntax(exc)}") from None
    return _Reader(where, environment, tool_names, config).book(raw, path)


def _syntax(exc: tomllib.TOMLDecodeError) -> str:
    """tomllib's "Expected '=' ... (at line 3, column 7)" as "line 3: Expected '=' ..."."""
    message = str(exc)
    found = _LINE.search(message)
    if found is None:
        return f"not valid TOML ({message})."
    what = _LINE.sub("", message).strip().rstrip(".")
    return f"line {found.group(1)}, column {found.group(2)}: not valid TOML ({what})."


class _Reader:
    def __init__(
        self,
        where: str,
        environment: Mapping[str, str],
        tool_names: Collection[str] | None,
        config: Config | None,
    ) -> None:
        self._where = where
        self._environment = environment
        self._tools = tool_names
        self._config = config

    def fail(self, place: str, problem: str) -> ConfigError:
        return ConfigError(f"{self._where}: {place}: {problem}")

    def book(self, raw: dict[str, Any], path: str) -> ProfileBook:
        self._known(raw, _TOP, "the file")
        tables = raw.get("profiles", {})
        if not isinstance(tables, dict):
            raise self.fail("profiles", "must be tables, e.g. [profiles.support]")
        profiles = {DEFAULT: ProfileSpec(DEFAULT)}
        for name, table in tables.items():
            profiles[name] = self._profile(name, table)
        rules_raw = raw.get("rules", [])
        if not isinstance(rules_raw, list):
            raise self.fail("rules", "must be [[rules]] tables")
        rules = tuple(
            self._rule(number, table, profiles) for number, table in enumerate(rules_raw, start=1)
        )
        admins = raw.get("admins", {})
        if not isinstance(admins, dict):
            raise self.fail("admins", "must be a table, [admins]")
        self._known(admins, _ADMIN_KEYS, "[admins]")
        parsed = {
            key: self._value(_ADMIN_KEYS[key], value, "[admins]", key)
            for key, value in admins.items()
        }
        return ProfileBook(source=path, profiles=profiles, rules=rules, admins=Admins(**parsed))

    def _profile(self, name: str, table: Any) -> ProfileSpec:
        place = f'profile "{name}"'
        if not _NAME.fullmatch(name):
            raise self.fail(
                place, "a name is 1 to 32 letters, digits, - or _ (it is typed as /profile NAME)"
            )
        if not isinstance(table, dict):
            raise self.fail(place, "must be a table, [profiles.NAME]")
        self._known(table, _PROFILE_KEYS, place)
        values = {
            key: self._value(_PROFILE_KEYS[key], value, place, key) for key, value in table.items()
        }
        if "base_url" in values and "model_api" not in values:
            # As with OPENAI_BASE_URL: compatible servers rarely speak the Responses API.
            values["model_api"] = "chat_completions"
        variable = values.get("api_key_env")
        if variable is not None and not (self._environment.get(variable) or "").strip():
            raise self.fail(
                place,
                f"api_key_env {variable} is not set (put the key in it, in .env or the "
                "environment)",
            )
        for tool in values.get("tools", ()):
            if self._tools is not None and tool not in self._tools:
                configured = ", ".join(sorted(self._tools)) or "none are configured"
                raise self.fail(
                    place,
                    f'tool "{tool}" is not configured (MCP servers in BOT_MCP_CONFIG and tool '
                    f"plugins: {configured})",
                )
        tokens = values.get("context_tokens")
        if tokens is not None and self._config is not None:
            least = self._config.output_reserve + self._config.summary_tokens + MIN_HISTORY_TOKENS
            if tokens < least:
                raise self.fail(
                    place,
                    f"context_tokens must be at least {least:,}: the answer, the summary and "
                    f"{MIN_HISTORY_TOKENS:,} for the conversation itself",
                )
        return ProfileSpec(name, **values)

    def _rule(self, number: int, table: Any, profiles: Mapping[str, ProfileSpec]) -> Rule:
        place = f"rule {number}"
        if not isinstance(table, dict):
            raise self.fail(place, "must be a table, [[rules]]")
        self._known(table, _RULE_KEYS, place)
        values = {
            key: self._value(_RULE_KEYS[key], value, place, key) for key, value in table.items()
        }
        if "profile" not in values:
            raise self.fail(place, 'has no profile = "NAME"')
        if values["profile"] not in profiles:
            raise self.fail(
                place,
                f'names profile "{values["profile"]}", which is not defined '
                f"(defined: {', '.join(profiles)})",
            )
        platform = values.get("platform")
        if "guild" in values and "team" in values:
            raise self.fail(place, "has both guild (Discord) and team (Slack): use one")
        if "guild" in values:
            if platform not in (None, "discord"):
                raise self.fail(place, 'guild is a Discord server\'s ID: set platform = "discord"')
            platform = "discord"
        if "team" in values:
            if platform not in (None, "slack"):
                raise self.fail(place, 'team is a Slack workspace\'s ID: set platform = "slack"')
            platform = "slack"
        if values.get("dm") is True and "guild" in values:
            raise self.fail(place, "can never match: Discord direct messages have no guild")
        return Rule(
            number=number,
            profile=values["profile"],
            platform=platform,
            workspace=values.get("guild") or values.get("team"),
            channel=values.get("channel"),
            dm=values.get("dm"),
        )

    def _known(self, table: Mapping[str, Any], known: Collection[str], place: str) -> None:
        for key in table:
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                hint = (
                    f' (did you mean "{close[0]}"?)' if close else f" (known: {', '.join(known)})"
                )
                raise self.fail(place, f'unknown key "{key}"{hint}')

    def _value(self, parse: Callable[[Any], Any], value: Any, place: str, key: str) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise self.fail(place, f"{key} {exc}") from None
