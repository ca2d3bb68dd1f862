"""Reading `BOT_MCP_CONFIG`: MCP servers in the `mcpServers` shape other MCP clients use.

The file is the one Claude Desktop, Cursor and the MCP docs use, so a server's published
snippet can be pasted in as is, with two optional keys of the bot's own per server:

    {"mcpServers": {
        "tickets": {"command": "${PYTHON}", "args": ["${CONFIG_DIR}/tickets.py"],
                    "env": {"TOKEN": "${TOKEN}"}, "require_approval": ["close_ticket"],
                    "allowed_tools": ["lookup_ticket", "close_ticket"]},
        "search": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "..."},
                   "require_approval": "never"}}}

`${NAME}` in `command`, `args`, `cwd`, `url` and the values of `env` and `headers` is replaced
from the bot's own settings (`.env` or the environment), so secrets need not be written into the
file; a name that is not set is an error. Two names are the bot's own and never read from
the environment: `${PYTHON}`, the interpreter running the bot (whose venv has `mcp`, which a
bare `python` on PATH may not), and `${CONFIG_DIR}`, the absolute folder this file is in, for
paths that must not depend on where the bot was started. `$${NAME}` stays `${NAME}`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..settings import ConfigError

Approval = Literal["always", "never"] | tuple[str, ...]
_VARIABLE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


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
    # The bot's own names win over the environment's: a PYTHON set for some other tool (build
    # systems set it to "python3") would bring back the interpreter that lacks `mcp`.
    names = {
        **environment,
        "PYTHON": sys.executable,
        # abspath, not resolve(): the folder as named, even when the file is a symlink into
        # somewhere else (a mounted ConfigMap, a dotfiles checkout).
        "CONFIG_DIR": os.path.dirname(os.path.abspath(path)),
    }
    return [_server(name, entry, names, where) for name, entry in servers.items()]


def _server(name: str, entry: Any, names: Mapping[str, str], where: str) -> ServerSpec:
    here = f"{where}, server {name!r}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{here}: expected an object.")

    def expand(value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if match[1]:
                return match[0][1:]
            if match[2] not in names:
                raise ConfigError(f"{here}: ${{{match[2]}}} is not set.")
            return names[match[2]]

        return _VARIABLE.sub(replace, value)

    def text(key: str) -> str | None:
        value = entry.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(f'{here}: "{key}" must be a string.')
        return expand(value)

    def mapping(key: str) -> dict[str, str] | None:
        value = entry.get(key)
        if value is None:
            return None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f'{here}: "{key}" must map names to strings.')
        return {str(k): expand(v) for k, v in value.items()}

    def strings(key: str, what: str) -> list[str] | None:
        value = entry.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f'{here}: "{key}" must be a list of {what}.')
        return value

    command, url = text("command"), text("url")
    if bool(command) == bool(url):
        raise ConfigError(f'{here}: give either "command" (stdio) or "url" (streamable HTTP).')
    approval = entry.get("require_approval", "never")
    if approval not in ("always", "never"):
        if not isinstance(approval, list) or not all(isinstance(v, str) for v in approval):
            raise ConfigError(
                f'{here}: "require_approval" must be "always", "never" or a list of tool names.'
            )
        approval = tuple(approval)
    allowed = strings("allowed_tools", "tool names")
    return ServerSpec(
        name=name,
        command=command,
        args=tuple(expand(arg) for arg in strings("args", "strings") or ()),
        env=mapping("env"),
        cwd=text("cwd"),
        url=url,
        headers=mapping("headers"),
        require_approval=approval,
        allowed_tools=None if allowed is None else tuple(allowed),
    )
