"""`/healthz` and `/readyz` over HTTP: a database that really goes away, a Discord gateway that
really drops the bot, a Slack app that disconnects, and a bot that is shutting down."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.app import readiness_checks
from bot.messages import IncomingMessage
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI, Fault
from tests.fakes.slack_server import FakeSlack
from tests.support.console import bot_env, start_console
from tests.support.discord import CHANNEL, Harness, discord_config, eventually
from tests.support.metrics import Endpoint, free_port, serving
from tests.support.parts import BotParts, make_config
from tests.support.postgres import PostgresSchema
from tests.support.sinks import Recorder
from tests.support.slack import running
from tests.support.tcp_proxy import TcpProxy


def through(proxy: TcpProxy, url: str) -> str:
    """`url` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{proxy.port}" if credentials else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def test_healthz_answers_while_the_process_runs(bot: BotParts) -> None:
    async with serving(readiness_checks(bot.core, bot.store, [])) as http:
        assert await http.get("/healthz") == (200, "ok\n")
        assert await http.get("/readyz") == (200, "ready\n")


async def test_readyz_is_503_while_postgres_is_unreachable_and_200_once_it_is_back(
    postgres: PostgresSchema, fake_openai: FakeOpenAI
) -> None:
    server = urlsplit(postgres.url)
    async with TcpProxy(server.hostname or "127.0.0.1", server.port or 5432) as proxy:
        config = make_config(fake_openai, database_url=through(proxy, postgres.url))
        parts = await BotParts(config).start()
        try:
            checks = readiness_checks(parts.core, parts.store, [])
            async with serving(checks) as http:
                assert await http.get("/readyz") == (200, "ready\n")

                await proxy.cut()
                status, body = await http.get("/readyz")
                assert status == 503
                assert body.startswith("database: ")
                assert body.count("\n") == 1  # the database alone
                assert (await http.get("/healthz"))[0] == 200  # alive, only not ready

                await proxy.restore()
                await http.until("/readyz", 200)
                reply = await parts.core.handle(
                    IncomingMessage("test", "pg:1", "u1", "Ann", "back?"), sink=Recorder()
                )
                assert reply.text.startswith("You said: [Ann] back?")
        finally:
            await parts.close()


@contextmanager
def spoiled(path: Path, how: str) -> Iterator[None]:
    """The memory file made unusable to a new connection, as `how` says, for the block."""
    aside = path.with_name("aside.sqlite3")
    if how == "unreadable":
        path.chmod(0)
        yield
        path.chmod(0o600)
    elif how == "a directory":
        path.rename(aside)
        path.mkdir()
        yield
        path.rmdir()
        aside.rename(path)
    elif how == "removed":
        os.link(path, aside)  # keeps the file, to put it back
        path.unlink()
        yield
        os.link(aside, path)
        aside.unlink()
    else:
        # Replaced by a copy: a new connection reads it happily, while this process goes on
        # writing the file nobody will open again.
        copy = path.with_name("copy.sqlite3")
        shutil.copyfile(path, copy)
        path.rename(aside)
        copy.rename(path)
        yield
        aside.replace(path)


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("unreadable", "cannot be opened again"),
        ("a directory", "is no longer the file this process opened"),
        ("removed", "is no longer the file this process opened"),
        ("replaced", "is no longer the file this process opened"),
    ],
)
async def test_readyz_is_503_while_the_sqlite_file_could_not_be_opened_again(
    bot: BotParts, how: str, reason: str
) -> None:
    if how == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads a file of mode 000 all the same")
    path = Path(bot.store.location)
    async with serving(readiness_checks(bot.core, bot.store, [])) as http:
        assert await http.get("/readyz") == (200, "ready\n")
        with spoiled(path, how):
            status, body = await http.get("/readyz")
        assert status == 503
        assert body.startswith(f"database: StoreUnavailableError: {path} {reason}")
        assert body.count("\n") == 1
        assert await http.get("/readyz") == (200, "ready\n")
    reply = await bot.core.handle(
        IncomingMessage("test", "t", "u1", "Ann", "still here?"), sink=Recorder()
    )
    assert reply.text.startswith("You said: [Ann] still here?")


async def test_readyz_names_discord_while_its_gateway_is_down(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    harness = await Harness.start(
        fake_discord, discord_config(fake_openai, tmp_path / "memory.sqlite3")
    )
    try:
        parts = harness.parts
        checks = readiness_checks(parts.core, parts.store, [harness.adapter])
        async with serving(checks) as http:
            assert await http.get("/readyz") == (200, "ready\n")

            # An outage: the connection drops and reconnecting is refused until it ends.
            fake_discord.gateway_down = True
            await fake_discord.drop_connection()
            assert await http.until("/readyz", 503) == "discord: not connected\n"
            await eventually(lambda: fake_discord.refused_connections > 0, what="a retry")
            assert await http.get("/readyz") == (503, "discord: not connected\n")

            fake_discord.gateway_down = False
            await http.until("/readyz", 200)
            assert fake_discord.gateway.resumes  # the session went on where it was
        await harness.say(CHANNEL, "still there?", mention=True)
        assert harness.last(CHANNEL).startswith("You said: [Ann] still there?")
    finally:
        await harness.stop()


async def test_readyz_names_slack_once_its_socket_mode_connection_is_gone(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        parts = bot.parts
        checks = readiness_checks(parts.core, parts.store, [bot.adapter])
        async with serving(checks) as http:
            assert await http.get("/readyz") == (200, "ready\n")
            await bot.adapter.close(grace=1.0)
            assert await http.get("/readyz") == (503, "slack: not connected\n")


async def test_readyz_says_the_bot_is_stopping_once_a_drain_began(bot: BotParts) -> None:
    async with serving(readiness_checks(bot.core, bot.store, [])) as http:
        await bot.core.drain(grace=1.0)
        assert await http.get("/readyz") == (503, "bot: shutting down\n")
        assert (await http.get("/healthz"))[0] == 200


async def test_python_m_bot_serves_health_and_metrics_and_logs_json_without_its_key(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    port = free_port()
    env = bot_env(
        fake_openai,
        tmp_path / "memory.sqlite3",
        BOT_METRICS_PORT=str(port),
        BOT_METRICS_HOST="127.0.0.1",
        BOT_LOG_FORMAT="json",
        BOT_LOG_LEVEL="INFO",
    )
    key = env["OPENAI_API_KEY"]
    console = await start_console(tmp_path, env, "console")
    http = Endpoint(f"http://127.0.0.1:{port}")
    try:
        assert await http.get("/healthz") == (200, "ok\n")
        assert await http.get("/readyz") == (200, "ready\n")
        assert "You said: [" in await console.say("hello")
        # As OpenAI answers a wrong key: it quotes it back, and the failure is logged.
        fake_openai.fail_next(Fault(status=401, body=f"Incorrect API key provided: {key}"))
        await console.say("and now?")
        scrape = await http.scrape()
    finally:
        code, stderr = await console.quit()
    assert code == 0
    turns = "memorybot_turns_total"
    assert scrape.value(turns, platform="console", outcome="answered") == 1
    assert scrape.value(turns, platform="console", outcome="model_credentials") == 1
    assert scrape.value("memorybot_model_tokens_total", kind="input") > 0
    logged = [json.loads(line) for line in stderr.splitlines()]
    assert any(line["message"].startswith("Serving /healthz") for line in logged)
    (failed,) = [line for line in logged if line["message"].startswith("Turn failed")]
    assert failed["level"] == "WARNING"
    assert failed["session_id"] == "console:default"
    assert failed["platform"] == "console"
    assert "Incorrect API key provided: [redacted]" in failed["message"]
    assert key not in stderr
