"""Profiles at the console, as a person runs it: `python -m bot console` in a child process
with `BOT_PROFILES`, against the fake model server."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.openai_server import FakeOpenAI, calling, message_text
from tests.support.console import bot_env, run_cli, start_console

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROFILES = """
[profiles.support]
instructions = "You are the support desk."
model = "support-model"

[profiles.general]
model = "general-model"

[[rules]]
platform = "console"
channel = "desk"
profile = "support"
"""


async def test_the_threads_rule_picks_its_profile_and_anyone_may_switch(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    (tmp_path / "profiles.toml").write_text(PROFILES, encoding="utf-8")
    env = bot_env(fake_openai, tmp_path / "memory.sqlite3", BOT_PROFILES="profiles.toml")
    console = await start_console(tmp_path, env, "console", "--thread", "desk", "--name", "Tess")
    await console.say("my order is 4417")
    assert fake_openai.requests[-1].body["model"] == "support-model"
    assert message_text(fake_openai.requests[-1].messages[0]).startswith(
        "You are the support desk."
    )
    shown = await console.say("/profile")
    assert "Profile here: support (rule 1 of profiles.toml)." in shown
    assert "Model: support-model at 127.0.0.1:" in shown
    assert "sk-test-console-key" not in shown
    switched = await console.say("/profile general")
    assert "Done: this channel now uses the profile general (general-model)." in switched
    answer = await console.say("what is my order?")
    assert "my order is 4417" in answer  # the thread's memory stayed
    assert fake_openai.requests[-1].body["model"] == "general-model"
    code, stderr = await console.quit()
    assert code == 0
    assert "Traceback" not in stderr

    # Another thread matches no rule: the global settings.
    other = await start_console(tmp_path, env, "console", "--thread", "chat", "--name", "Tess")
    await other.say("hello")
    assert fake_openai.requests[-1].body["model"] == "fake-model"
    assert (await other.quit())[0] == 0


async def test_check_names_the_profiles(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    (tmp_path / "profiles.toml").write_text(PROFILES, encoding="utf-8")
    env = bot_env(fake_openai, tmp_path / "m.sqlite3", BOT_PROFILES="profiles.toml")
    env["DISCORD_TOKEN"] = "d"
    ran = await run_cli(tmp_path, env, "check")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.endswith("platforms: discord; profiles: default, support, general (1 rule)\n")


async def test_the_shipped_support_desk_looks_orders_up(tmp_path: Path) -> None:
    """examples/profiles.toml with examples/mcp.json, at the console's `desk` thread: the
    support profile's agent, offered the orders server's tool and nothing else, runs it."""
    examples = EXAMPLES
    async with FakeOpenAI(calling("lookup_order", {"order": "A-1111"})) as fake:
        env = bot_env(
            fake,
            tmp_path / "memory.sqlite3",
            BOT_PROFILES=str(examples / "profiles.toml"),
            BOT_MCP_CONFIG=str(examples / "mcp.json"),
        )
        console = await start_console(tmp_path, env, "console", "--thread", "desk")
        answer = await console.say("where is my order A-1111?")
        assert "Order A-1111: a blue kettle, shipped on Monday" in answer
        assert (await console.quit())[0] == 0
    first = fake.requests[0]
    assert first.body["model"] == "gpt-4.1-mini"
    assert message_text(first.messages[0]).startswith("You are the support desk of Acme")
    assert [t["function"]["name"] for t in first.body["tools"]] == ["search_thread", "lookup_order"]
