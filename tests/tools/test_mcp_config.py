"""`BOT_MCP_CONFIG` as written: which fields `${NAME}` is filled in, the bot's own `${PYTHON}`
and `${CONFIG_DIR}`, and one line naming the field that is wrong.

The shipped example (`examples/mcp.json`, running `examples/tickets_server.py`) is run for real,
through `python -m bot console` in a child process, from a folder that is not the checkout and
with a `python` first on PATH that lacks the `mcp` package, as on a machine where the bot was
set up by `python3 run.py` and its venv was never activated.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.settings import ConfigError
from bot.tools import read_mcp_config
from tests.fakes.openai_server import FakeOpenAI, Fault, ToolCall, message_text
from tests.support.console import bot_env, start_console

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TICKET = re.compile(r"\bT-\d+\b")


def looking_up(messages: list[dict[str, Any]]) -> str | ToolCall | Fault:
    """Calls `lookup_ticket` for the ticket the message names, then repeats what it said."""
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return f"Tools said: {message_text(last)}"
    found = TICKET.search(message_text(last)) if last.get("role") == "user" else None
    return ToolCall("lookup_ticket", {"ticket": found[0]}) if found else "Nothing to look up."


def python_without_mcp(folder: Path) -> Path:
    """A folder for PATH whose `python` is not the bot's and fails as one lacking `mcp` does."""
    folder.mkdir()
    python = folder / "python"
    python.write_text("#!/bin/sh\necho \"No module named 'mcp'\" >&2\nexit 1\n")
    python.chmod(0o755)
    return folder


async def test_the_shipped_example_runs_from_another_folder_without_the_venv_on_path(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.responder = looking_up
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Named relative to where the bot runs, as `BOT_MCP_CONFIG=examples/mcp.json` is.
    up_to_root = [".."] * (len(elsewhere.parts) - 1)
    config = Path(*up_to_root, *EXAMPLES.parts[1:], "mcp.json")
    env = bot_env(fake_openai, tmp_path / "m.sqlite3", BOT_MCP_CONFIG=str(config))
    path = [python_without_mcp(tmp_path / "bin"), "/usr/bin", "/bin"]
    env["PATH"] = os.pathsep.join(map(str, path))
    console = await start_console(elsewhere, env, "console", "--name", "Tess")
    try:
        looked = await console.say("look up T-1")
        code, stderr = await console.quit()
    finally:
        if console.process.returncode is None:
            console.process.kill()
            await console.process.wait()
    assert looked.splitlines() == [
        "(using lookup_ticket…)",
        "bot> Tools said: T-1: 'Login page times out', assigned to Dana, open.",
    ], stderr
    assert code == 0
    assert "did not start" not in stderr


def write(path: Path, servers: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path


def test_python_and_config_dir_are_the_bots_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    write(
        folder / "mcp.json",
        {
            "s": {
                "command": "${PYTHON}",
                "args": ["${CONFIG_DIR}/server.py", "--token=${TOKEN}", "--literal=$${TOKEN}"],
                "cwd": "${CONFIG_DIR}",
                "env": {"DATA": "${CONFIG_DIR}/data"},
            }
        },
    )
    monkeypatch.chdir(tmp_path)
    # A PYTHON (or CONFIG_DIR) in the environment is not what `${PYTHON}` means: some tools
    # set PYTHON=python3 for their own use, which would bring back the interpreter lacking `mcp`.
    environment = {"TOKEN": "t0k", "PYTHON": "python2", "CONFIG_DIR": "/nowhere"}
    (spec,) = read_mcp_config("conf/mcp.json", environment)
    assert spec.command == sys.executable
    assert spec.args == (f"{folder}/server.py", "--token=t0k", "--literal=${TOKEN}")
    assert spec.cwd == str(folder)
    assert spec.env == {"DATA": f"{folder}/data"}


def test_the_example_config_names_the_bots_python_and_its_own_server() -> None:
    tickets, orders = read_mcp_config(EXAMPLES / "mcp.json", {})
    assert tickets.command == orders.command == sys.executable
    assert Path(tickets.args[0]) == EXAMPLES / "tickets_server.py"
    # The order lookup of the support profile in examples/profiles.toml.
    assert (orders.name, Path(orders.args[0])) == ("orders", EXAMPLES / "orders_server.py")


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"command": "x", "args": "server.py"}, '"args" must be a list of strings.'),
        ({"command": "x", "args": ["a", 2]}, '"args" must be a list of strings.'),
        ({"command": ["python", "s.py"]}, '"command" must be a string.'),
        ({"url": 8000}, '"url" must be a string.'),
        ({"command": "x", "cwd": ["/srv"]}, '"cwd" must be a string.'),
        ({"command": "x", "env": {"K": 1}}, '"env" must map names to strings.'),
        ({"command": "x", "allowed_tools": "all"}, '"allowed_tools" must be a list of tool names.'),
        (
            {"command": "x", "require_approval": ["a", 1]},
            '"require_approval" must be "always", "never" or a list of tool names.',
        ),
        ({"command": "x", "args": ["${NOPE}"]}, "${NOPE} is not set."),
    ],
)
def test_each_field_has_its_own_message(
    tmp_path: Path, entry: dict[str, Any], problem: str
) -> None:
    path = write(tmp_path / "mcp.json", {"tickets": entry})
    with pytest.raises(ConfigError) as raised:
        read_mcp_config(path, {})
    assert str(raised.value) == f"BOT_MCP_CONFIG ({path}), server 'tickets': {problem}"
