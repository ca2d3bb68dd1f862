"""`python -m bot` itself: it answers at once when no model runs, `serve` and `check` say what
is missing in one line, and a failure names its cause (a platform out of reach, a database
folder that is not there) or, for a reader that went away, ends quietly."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import discord
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import SlackAdapter
from bot.cli import main
from bot.config import ConfigError
from bot.storage import Author, SQLiteStore, Usage
from bot.storage.postgres.schema import MIGRATIONS as POSTGRES_MIGRATIONS
from bot.storage.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import FakeSlack
from tests.support.cli import ROOT, memory_env, run_bot
from tests.support.metrics import free_port
from tests.support.parts import BotParts, make_config
from tests.support.postgres import PostgresSchema
from tests.support.slack import SECRET, slack_settings

HEAVY = ("agents", "openai", "discord", "slack_bolt", "slack_sdk")
"""What no command that runs no model may import: each takes a large part of a second."""
NO_PLATFORM = (
    "error: no platform is configured: set DISCORD_TOKEN for discord, or SLACK_BOT_TOKEN with "
    "SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode) for slack (in .env or "
    "the environment); to chat in this terminal instead, run `python -m bot console`\n"
)


def imported(importtime: str) -> set[str]:
    """The top-level packages an `-X importtime` report lists."""
    found = set()
    for line in importtime.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            found.add(parts[2].strip().split(".")[0])
    return found


async def seeded(path: Path, threads: int = 3, text: str = "hello") -> Path:
    async with await SQLiteStore.open(path) as store:

        async def one(n: int) -> None:
            await store.append(
                f"console:t{n}",
                [
                    {"role": "user", "content": f"[root] {text}"},
                    {"role": "assistant", "content": "hi"},
                ],
                author=Author("console:root", "root"),
                usage=Usage("m", 10, 0, 5, 20),
            )

        await asyncio.gather(*(one(n) for n in range(threads)))
    return path


def write_env(tmp_path: Path, **settings: str) -> Path:
    env = tmp_path / "test.env"
    env.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    return env


@pytest.fixture(autouse=True)
def _no_settings_from_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("BOT_", "DISCORD_", "SLACK_", "OPENAI_")):
            monkeypatch.delenv(key)


# ----- answering at once ---------------------------------------------------------------------


def test_importing_the_cli_brings_no_sdk_and_no_platform_library() -> None:
    ran = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import bot.cli"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "bot" in imported(ran.stderr)
    assert not imported(ran.stderr) & set(HEAVY)


@pytest.mark.parametrize(
    "command", [("--help",), ("sessions", "--help"), ("sessions",), ("usage",), ("check",)]
)
async def test_commands_that_run_no_model_import_neither_sdk_nor_platforms(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    memory = await seeded(tmp_path / "memory.sqlite3")
    tokens = {"DISCORD_TOKEN": "d", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}
    env = {"OPENAI_API_KEY": "sk-not-used", **tokens}
    ran = await run_bot(*command, memory=memory, env=env, python=("-X", "importtime"))
    assert ran.code == 0, ran.err
    assert ran.out
    assert not imported(ran.err) & set(HEAVY)


# ----- serve and check -----------------------------------------------------------------------


def test_serve_with_no_platform_configured_names_what_to_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = write_env(tmp_path, OPENAI_API_KEY="sk-not-used", BOT_DB_PATH=str(tmp_path / "m.db"))
    with pytest.raises(SystemExit) as exited:
        main(["--env-file", str(env), "serve"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == NO_PLATFORM
    assert not (tmp_path / "m.db").exists()  # it never started the console, nor opened memory


async def test_serve_in_a_child_process_exits_2_with_one_line(tmp_path: Path) -> None:
    ran = await run_bot("serve", memory=tmp_path / "m.db", env={"OPENAI_API_KEY": "sk-x"})
    assert (ran.code, ran.err, ran.out) == (2, NO_PLATFORM, "")


def test_check_opens_the_memory_and_says_what_it_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    memory = tmp_path / "memory.sqlite3"
    env = write_env(tmp_path, OPENAI_API_KEY="sk-x", DISCORD_TOKEN="d", BOT_DB_PATH=str(memory))
    assert main(["--env-file", str(env), "check"]) == 0
    assert (
        capsys.readouterr().out
        == f"ok: SQLite {memory}, schema v{len(SQLITE_MIGRATIONS)}; platforms: discord\n"
    )
    assert memory.is_file()  # created, as start-up creates it

    env = write_env(tmp_path, OPENAI_API_KEY="sk-x", BOT_DB_PATH=str(memory))
    with pytest.raises(SystemExit) as exited:
        main(["--env-file", str(env), "check"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == NO_PLATFORM


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        (
            {"DISCORD_TOKEN": "d", "DISCORD_ALLOWED_GUILDS": "general"},
            "error: DISCORD_ALLOWED_GUILDS must be a numeric ID",
        ),
        ({"SLACK_BOT_TOKEN": "xoxp-1", "SLACK_APP_TOKEN": "xapp-1"}, "error: SLACK_BOT_TOKEN must"),
        ({"DISCORD_TOKEN": "d", "OPENAI_API_KEY": ""}, "error: OPENAI_API_KEY is not set"),
    ],
)
def test_check_fails_on_what_serve_would_fail_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: dict[str, str], error: str
) -> None:
    env = write_env(tmp_path, **{"OPENAI_API_KEY": "sk-x", **settings})
    with pytest.raises(SystemExit) as exited:
        main(["--env-file", str(env), "check"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith(error)


async def test_check_in_a_child_process_creates_the_postgres_schema(
    postgres: PostgresSchema,
) -> None:
    env = {"OPENAI_API_KEY": "sk-x", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
    ran = await run_bot("check", memory=postgres.url, env=env)
    assert ran.code == 0, ran.err
    server = urlsplit(postgres.url)
    where = f"{server.path.lstrip('/')}@{server.hostname}:{server.port}"
    assert (
        ran.out == f"ok: PostgreSQL {where}, schema v{len(POSTGRES_MIGRATIONS)}; platforms: slack\n"
    )
    ran = await run_bot("sessions", memory=postgres.url)  # readable: the schema is there
    assert (ran.code, ran.out) == (0, "No conversations stored yet.\n")


# ----- errors that name their cause ----------------------------------------------------------


def _serving_env(tmp_path: Path, fake: FakeOpenAI, **settings: str) -> Path:
    return write_env(
        tmp_path,
        OPENAI_API_KEY="sk-x",
        OPENAI_BASE_URL=fake.base_url,
        BOT_DB_PATH=str(tmp_path / "memory.sqlite3"),
        BOT_SHUTDOWN_GRACE="1",
        **settings,
    )


def test_discord_out_of_reach_is_named_with_its_address(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = f"http://127.0.0.1:{free_port()}/api/v10"
    monkeypatch.setattr(discord.http.Route, "BASE", api)
    env = _serving_env(tmp_path, fake_openai, DISCORD_TOKEN="d")
    with pytest.raises(SystemExit) as exited:
        main(["--env-file", str(env), "discord"])
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"error: cannot reach Discord at {api}: "), last
    assert exited.value.code == 1
    assert "Connect call failed" in last


def test_slack_out_of_reach_is_named_with_its_address(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = f"http://127.0.0.1:{free_port()}/api/"
    monkeypatch.setattr(AsyncWebClient, "BASE_URL", api)
    env = _serving_env(tmp_path, fake_openai, SLACK_BOT_TOKEN="xoxb-1", SLACK_APP_TOKEN="xapp-1")
    with pytest.raises(SystemExit) as exited:
        main(["--env-file", str(env), "slack"])
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"error: cannot reach Slack at {api}: "), last
    assert exited.value.code == 1
    assert "Connect call failed" in last


async def test_a_slack_port_in_use_names_the_setting_not_the_database(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    parts = await BotParts(make_config(fake_openai)).start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = slack_settings(signing_secret=SECRET, port=port)
        adapter = SlackAdapter(parts.core, settings, base_url=slack.api_url, host="127.0.0.1")
        try:
            with pytest.raises(ConfigError) as raised:
                await adapter.run()
        finally:
            await adapter.close(grace=1.0)
            await parts.close()
    assert str(raised.value) == (
        f"cannot listen for Slack on 127.0.0.1:{port} (Address already in use); "
        "pick another SLACK_PORT"
    )


async def test_a_missing_database_folder_is_refused_not_created(tmp_path: Path) -> None:
    export = tmp_path / "threads.jsonl"
    ran = await run_bot(
        "export", "--all", "--output", str(export), memory=await seeded(tmp_path / "memory.sqlite3")
    )
    assert ran.code == 0, ran.err
    missing = tmp_path / "no" / "such"
    ran = await run_bot("import", str(export), memory=missing / "m.sqlite3")
    assert not (tmp_path / "no").exists()
    assert ran.code == 1
    assert ran.err == (
        f"error: cannot use the memory database: there is no folder {missing} to keep "
        "m.sqlite3 in (check BOT_DB_PATH or BOT_DATABASE_URL)\n"
    )
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("command", [("export", "--all"), ("sessions",)])
def test_a_reader_that_stops_early_ends_the_command_quietly(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    # More than a pipe holds (64 KiB), so the command is still writing when the reader goes.
    memory = asyncio.run(seeded(tmp_path / "memory.sqlite3", threads=1500, text="x" * 40))
    child = subprocess.Popen(
        [sys.executable, "-m", "bot", "--env-file", os.devnull, *command],
        cwd=ROOT,
        env=memory_env(memory),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stderr is not None
    with child.stderr:
        assert child.stdout.readline()  # `| head -1`
        child.stdout.close()
        err = child.stderr.read().decode()
    assert (child.wait(timeout=60), err) == (0, "")
