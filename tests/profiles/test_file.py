"""The profiles file: what a good one reads as, and one line with exit status 2 for each
mistake, naming the file and where, before anything connects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Config
from bot.profiles.file import load_profiles
from bot.profiles.spec import DEFAULT, Admins, ProfileSpec, Rule
from bot.settings import ConfigError

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
[profiles.support]
instructions = "You are the support desk."
model = "gpt-4.1-mini"
base_url = "https://generativelanguage.googleapis.com/v1beta/openai/"
api_key_env = "GEMINI_API_KEY"
tools = ["orders"]
memory_scope = "thread"
context_tokens = 16000
daily_tokens_per_user = 50000

[profiles.default]
model = "gpt-4.1"

[[rules]]
guild = 123456789012345678
channel = "987654321"
profile = "support"

[[rules]]
team = "T0123"
dm = true
profile = "default"

[admins]
discord_roles = ["Moderators", 555]
slack_users = ["U0123ABCD"]
"""


def load(text: str, tmp_path: Path, **environment: str) -> object:
    path = tmp_path / "profiles.toml"
    path.write_text(text, encoding="utf-8")
    return load_profiles(
        str(path),
        environment={"GEMINI_API_KEY": "key", **environment},
        tool_names={"orders", "tickets"},
        config=Config(),
    )


def test_a_good_file_reads_as_written(tmp_path: Path) -> None:
    book = load(GOOD, tmp_path)
    assert list(book.profiles) == [DEFAULT, "support"]  # type: ignore[attr-defined]
    support = book.profiles["support"]  # type: ignore[attr-defined]
    assert support == ProfileSpec(
        "support",
        instructions="You are the support desk.",
        model="gpt-4.1-mini",
        base_url="https://generativelanguage.googleapis.com/v1beta/openai/",
        api_key_env="GEMINI_API_KEY",
        model_api="chat_completions",  # a base URL without model_api, as the settings do
        tools=("orders",),
        memory_scope="thread",
        context_tokens=16000,
        daily_tokens_per_user=50000,
    )
    assert book.profiles[DEFAULT].model == "gpt-4.1"  # type: ignore[attr-defined]
    assert book.rules == (  # type: ignore[attr-defined]
        Rule(1, "support", platform="discord", workspace="123456789012345678", channel="987654321"),
        Rule(2, "default", platform="slack", workspace="T0123", dm=True),
    )
    assert book.admins == Admins(  # type: ignore[attr-defined]
        discord_roles=frozenset({"Moderators", "555"}), slack_users=frozenset({"U0123ABCD"})
    )


def test_the_shipped_example_reads(tmp_path: Path) -> None:
    book = load_profiles(
        str(ROOT / "examples" / "profiles.toml"),
        environment={},
        tool_names={"orders", "tickets"},
        config=Config(),
    )
    assert list(book.profiles) == [DEFAULT, "support", "general"]
    assert book.profiles["support"].tools == ("orders",)
    assert len(book.rules) == 5


BAD = [
    ("[profiles.support\nmodel = 1\n", "line 1, column 18: not valid TOML"),
    (
        '[profiles.support]\nmodle = "x"\n',
        'profile "support": unknown key "modle" (did you mean "model"?)',
    ),
    ("[profile.support]\n", 'the file: unknown key "profile" (did you mean "profiles"?)'),
    (
        '[profiles.support]\nmodel_api = "soap"\n',
        "profile \"support\": model_api must be 'responses' or 'chat_completions'",
    ),
    (
        "[profiles.support]\ncontext_tokens = 100\n",
        'profile "support": context_tokens must be at least 6,096',
    ),
    (
        "[profiles.support]\ndaily_tokens_per_user = true\n",
        "daily_tokens_per_user must be a whole number of at least 0",
    ),
    (
        '[profiles.support]\ntools = ["shop"]\n',
        'profile "support": tool "shop" is not configured (MCP servers in BOT_MCP_CONFIG '
        "and tool plugins: orders, tickets)",
    ),
    (
        '[profiles.support]\napi_key_env = "MISSING_KEY"\n',
        'profile "support": api_key_env MISSING_KEY is not set',
    ),
    (
        '[profiles.support]\nbase_url = "generativelanguage.googleapis.com"\n',
        "base_url must be an http:// or https:// URL with a host",
    ),
    ('[profiles."sales team"]\n', 'profile "sales team": a name is 1 to 32 letters'),
    (
        '[[rules]]\nchannel = "1"\nprofile = "support"\n',
        'rule 1: names profile "support", which is not defined (defined: default)',
    ),
    (
        '[[rules]]\nprofile = "default"\n[[rules]]\nchanel = "1"\nprofile = "default"\n',
        'rule 2: unknown key "chanel" (did you mean "channel"?)',
    ),
    ('[[rules]]\nchannel = "1"\n', 'rule 1: has no profile = "NAME"'),
    (
        '[[rules]]\nplatform = "teams"\nprofile = "default"\n',
        "rule 1: platform must be 'discord' or 'slack' or 'console'",
    ),
    (
        '[[rules]]\nguild = "1"\nteam = "T1"\nprofile = "default"\n',
        "rule 1: has both guild (Discord) and team (Slack)",
    ),
    ('[[rules]]\nguild = "1"\ndm = true\nprofile = "default"\n', "rule 1: can never match"),
    (
        '[admins]\nslack_user = ["U1"]\n',
        '[admins]: unknown key "slack_user" (did you mean "slack_users"?)',
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[e for _, e in BAD])
def test_each_mistake_is_one_line_naming_the_file_and_where(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(text, tmp_path)
    message = str(raised.value)
    assert message.startswith(f"BOT_PROFILES ({tmp_path / 'profiles.toml'}): ")
    assert expected in message
    assert "\n" not in message


def test_a_key_put_where_its_variables_name_goes_is_never_repeated(tmp_path: Path) -> None:
    for key in ("sk-proj-abcdef123456", "AIzaSyD4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t"):
        with pytest.raises(ConfigError) as raised:
            load(f'[profiles.support]\napi_key_env = "{key}"\n', tmp_path)
        assert key not in str(raised.value)
        assert "must be the NAME of the environment variable" in str(raised.value)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"BOT_PROFILES \(nowhere.toml\): no such file\."):
        load_profiles("nowhere.toml", environment={}, tool_names=None)


@pytest.mark.parametrize("command", ["check", "console", "serve"])
def test_the_bot_stops_with_exit_2_before_connecting(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    for key in list(os.environ):
        if key.startswith(("BOT_", "DISCORD_", "SLACK_", "OPENAI_")):
            monkeypatch.delenv(key)
    (tmp_path / "profiles.toml").write_text('[[rules]]\nprofile = "sales"\n', encoding="utf-8")
    memory = tmp_path / "m.sqlite3"
    env = tmp_path / "test.env"
    env.write_text(
        f"OPENAI_API_KEY=sk-x\nBOT_DB_PATH={memory}\nDISCORD_TOKEN=d\n"
        f"BOT_PROFILES={tmp_path / 'profiles.toml'}\n"
    )
    with pytest.raises(SystemExit) as exited:
        main(["--env-file", str(env), command])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f'error: BOT_PROFILES ({tmp_path / "profiles.toml"}): rule 1: names profile "sales", '
        "which is not defined (defined: default)\n"
    )
    assert not memory.exists()  # nothing was opened, nothing connected
