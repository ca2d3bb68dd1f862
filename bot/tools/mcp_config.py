"""Reading `BOT_MCP_CONFIG`: MCP servers in the `mcpServers` shape other MCP clients use.

The file is the one Claude Desktop, Cursor and the MCP docs use, so a server's published
snippet can be pasted in as is, with two optional keys of the bot's own per server:

    {"mcpServers": {
        "tickets": {"command": "python", "args": ["tickets.py"], "env": {"TOKEN": "${TOKEN}"},
                    "require_approval": ["close_ticket"], "allowed_tools": ["lookup_ticket",
                    "close_ticket"]},
        "search": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "..."},
                   "require_approval": "never"}}}

`${NAME}` in `env`, `headers` and `url` is replaced from the bot's own settings (`.env` or the
environment), so secrets need not be written into the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..settings import ConfigError

Approval = Literal["always", "never"] | tuple[str, ...]
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class ServerSpec:
    """One configured MCP server."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] | None = None
    require_approval: Approval = "never"
    """`always`, `never`, or the names of the tools that need approval."""
    allowed_tools: tuple[str, ...] | None = None
    """Only these of the server's tools reach the agent; None for all of them."""

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "streamable HTTP"


def read_mcp_config(path: str | Path, environment: Mapping[str, str]) -> list[ServerSpec]:
    """The servers in the file, checked; raises `ConfigError` naming what is wrong."""
    where = f"BOT_MCP_CONFIG ({path})"
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{where}: not readable JSON ({exc}).") from None
    servers = raw.get("mcpServers") if isinstance(raw, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(f'{where}: expected an object with an "mcpServers" object.')
    return [_server(name, entry, environment, where) for name, entry in servers.items()]


def _server(name: str, entry: Any, environment: Mapping[str, str], where: str) -> ServerSpec:
    here = f"{where}, server {name!r}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{here}: expected an object.")
    command, url = entry.get("command"), entry.get("url")
    if bool(command) == bool(url):
        raise ConfigError(f'{here}: give either "command" (stdio) or "url" (streamable HTTP).')

    def expand(value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if match[1] not in environment:
                raise ConfigError(f"{here}: ${{{match[1]}}} is not set.")
            return environment[match[1]]

        return _VARIABLE.sub(replace, value)

    def strings(key: str) -> dict[str, str] | None:
        value = entry.get(key)
        if value is None:
            return None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f'{here}: "{key}" must map names to strings.')
        return {str(k): expand(v) for k, v in value.items()}

    def names(key: str) -> tuple[str, ...] | None:
        value = entry.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f'{here}: "{key}" must be a list of tool names.')
        return tuple(value)

    args = names("args") or ()
    approval = entry.get("require_approval", "never")
    if isinstance(approval, list):
        approval = names("require_approval") or ()
    elif approval not in ("always", "never"):
        raise ConfigError(
            f'{here}: "require_approval" must be "always", "never" or a list of tool names.'
        )
    return ServerSpec(
        name=name,
        command=expand(command) if isinstance(command, str) else None,
        args=args,
        env=strings("env"),
        cwd=entry.get("cwd") if isinstance(entry.get("cwd"), str) else None,
        url=expand(url) if isinstance(url, str) else None,
        headers=strings("headers"),
        require_approval=approval,
        allowed_tools=names("allowed_tools"),
    )
