"""Files shared in Slack reach the model: real slack-bolt against the fake Slack's file hosting.

The fake serves a private file only to a bearer token with `files:read`, and its sign-in page
(HTML, status 200) to anything else, as Slack does.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.downloads import DownloadError
from adapters.slack.files import (
    SharedFile,
    SlackFiles,
    is_slack_url,
    shared_files,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import BOT_TOKEN, FakeSlack
from tests.support.slack import ANN, CHANNEL, DM, running, thread_key

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
NOTES = b"The code is ZX-4471.\nKeep it safe.\n"


def user_parts(fake_openai: FakeOpenAI) -> list[dict[str, Any]]:
    """The content parts of the newest user message in the model's latest request."""
    users = [m for m in fake_openai.requests[-1].messages if m.get("role") == "user"]
    content = users[-1]["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def text_of(parts: list[dict[str, Any]]) -> str:
    return "\n".join(
        str(p.get("text", "")) for p in parts if p.get("type") in {"text", "input_text"}
    )


def image_urls(parts: list[dict[str, Any]]) -> list[str]:
    urls: list[str] = []
    for part in parts:
        if part.get("type") == "image_url":
            urls.append(str(part["image_url"]["url"]))
        elif part.get("type") == "input_image":
            urls.append(str(part["image_url"]))
    return urls


async def test_an_image_and_a_text_file_reach_the_model_as_the_right_parts(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        photo = slack.share_file("photo.png", PNG, "image/png", user=ANN)
        notes = slack.share_file("notes.txt", NOTES, "text/plain", user=ANN)
        archive = slack.share_file("backup.zip", b"PK\x03\x04" + bytes(64), "application/zip")
        await bot.send_event(bot.share("what is in these?", [photo, notes, archive], channel=DM))
        await bot.answer(DM, None)

        parts = user_parts(fake_openai)
        assert image_urls(parts) == [f"data:image/png;base64,{base64.b64encode(PNG).decode()}"]
        text = text_of(parts)
        assert text.startswith("[Ann] what is in these?")
        assert "--- notes.txt ---\nThe code is ZX-4471.\nKeep it safe.\n" in text
        assert "[backup.zip was attached; I can't read that type of file.]" in text
        assert "files-pri" not in str(fake_openai.requests[-1].body)  # no Slack URL leaks
        # Downloaded with the bot token; the unreadable type never downloaded at all.
        assert sorted(path.rsplit("/", 1)[-1] for path, _ in slack.downloads) == [
            "notes.txt",
            "photo.png",
        ]
        assert {token for _, token in slack.downloads} == {BOT_TOKEN}
        assert all("/download/" in path for path, _ in slack.downloads)


async def test_a_file_without_text_is_still_a_turn(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        notes = slack.share_file("notes.txt", NOTES, "text/plain", user=ANN)
        ts = await bot.mention("look", channel=CHANNEL)
        await bot.answer(CHANNEL, ts)
        # No mention and no text: a file dropped into the bot's thread.
        await bot.send_event(bot.share("", [notes], thread_ts=ts))
        await bot.answer(CHANNEL, ts, count=2)
        assert "--- notes.txt ---" in text_of(user_parts(fake_openai))
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 4


async def test_without_files_read_the_model_gets_a_note_and_the_log_says_why(
    slack: FakeSlack, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    slack.tokens[BOT_TOKEN].discard("files:read")
    async with running(slack, fake_openai) as bot:
        notes = slack.share_file("notes.txt", NOTES, "text/plain", user=ANN)
        with caplog.at_level(logging.WARNING, logger="adapters.slack.files"):
            await bot.send_event(bot.share("read this", [notes], channel=DM))
            answer = await bot.answer(DM, None)
        assert "[notes.txt was attached but I couldn't download it.]" in text_of(
            user_parts(fake_openai)
        )
        assert answer.startswith("You said: [Ann] read this")  # an answer, not a failed turn
        assert "files:read" in caplog.text
        assert "ZX-4471" not in str(fake_openai.requests[-1].body)


# ----- downloads on their own ----------------------------------------------------------------


@pytest.fixture
async def files(slack: FakeSlack) -> AsyncIterator[SlackFiles]:
    reader = SlackFiles(BOT_TOKEN, api_url=slack.api_url)
    reader.open()
    yield reader
    await reader.close()


def hosted(slack: FakeSlack, name: str, content: bytes, mimetype: str) -> SharedFile:
    (file,) = shared_files({"files": [slack.share_file(name, content, mimetype)]})
    return file


async def test_a_download_returns_the_bytes(slack: FakeSlack, files: SlackFiles) -> None:
    file = hosted(slack, "photo.png", PNG, "image/png")
    assert await files.download(file, limit=len(PNG)) == PNG


async def test_a_download_over_the_limit_stops(slack: FakeSlack, files: SlackFiles) -> None:
    file = hosted(slack, "big.txt", b"x" * 300_000, "text/plain")
    with pytest.raises(DownloadError, match="more than the 1,000"):
        await files.download(file, limit=1_000)


async def test_a_size_slack_understated_is_still_capped(
    slack: FakeSlack, files: SlackFiles
) -> None:
    file = hosted(slack, "big.txt", b"x" * 300_000, "text/plain")
    # Whatever the event said, the limit holds on what actually arrives.
    small = SharedFile(file.id, file.name, file.mimetype, 10, file.url)
    with pytest.raises(DownloadError):
        await files.download(small, limit=200_000)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"url": None}, "no download link"),
        ({"url": "https://evil.example/files-pri/x/notes.txt"}, "not hosted by Slack"),
        ({"name": "other.txt"}, "HTTP 404"),
    ],
)
async def test_a_download_that_cannot_work_raises(
    slack: FakeSlack, files: SlackFiles, change: dict[str, Any], match: str
) -> None:
    file = hosted(slack, "notes.txt", NOTES, "text/plain")
    if "name" in change:
        assert file.url is not None
        file = SharedFile(file.id, file.name, file.mimetype, file.size, file.url[:-9] + "other.txt")
    else:
        file = SharedFile(file.id, file.name, file.mimetype, file.size, change["url"])
    with pytest.raises(DownloadError, match=match):
        await files.download(file, limit=10_000)
    assert all("evil" not in path for path, _ in slack.downloads)


async def test_the_sign_in_page_is_not_taken_for_the_file(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    file = hosted(slack, "notes.txt", NOTES, "text/plain")
    reader = SlackFiles("xoxb-without-scope", api_url=slack.api_url)
    reader.open()
    try:
        with caplog.at_level(logging.INFO, logger="adapters.slack.files"):
            for _ in range(2):
                with pytest.raises(DownloadError, match=r"files:read"):
                    await reader.download(file, limit=10_000)
    finally:
        await reader.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # said loudly once, quietly after
    assert "files:read" in warnings[0].getMessage()


async def test_downloads_need_the_adapter_running(slack: FakeSlack) -> None:
    file = hosted(slack, "notes.txt", NOTES, "text/plain")
    reader = SlackFiles(BOT_TOKEN, api_url=slack.api_url)
    with pytest.raises(DownloadError, match="not running"):
        await reader.download(file, limit=10_000)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({}, []),
        ({"files": []}, []),
        (
            {
                "files": [
                    {
                        "id": "F1",
                        "name": "a.png",
                        "mimetype": "image/png",
                        "size": 12,
                        "url_private": "https://files.slack.com/files-pri/T-F1/a.png",
                        "url_private_download": "https://files.slack.com/files-pri/T-F1/download/a.png",
                    }
                ]
            },
            [
                SharedFile(
                    "F1",
                    "a.png",
                    "image/png",
                    12,
                    "https://files.slack.com/files-pri/T-F1/download/a.png",
                )
            ],
        ),
        # Only url_private: that one; no name: the title; a size that is not one: unknown.
        (
            {"files": [{"id": "F2", "title": "Notes", "url_private": "u", "size": "12"}]},
            [SharedFile("F2", "Notes", "", None, "u")],
        ),
        # A deleted file comes without links.
        ({"files": [{"id": "F3", "mode": "tombstone"}]}, [SharedFile("F3", "F3", "", None, None)]),
        ({"files": ["junk"]}, []),
    ],
)
def test_shared_files_are_read_from_the_event(
    event: dict[str, Any], expected: list[SharedFile]
) -> None:
    assert shared_files(event) == expected


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        ("https://files.slack.com/files-pri/T-F/download/a.png", True),
        ("https://slack.com/files-pri/T-F/download/a.png", True),
        ("http://files.slack.com/files-pri/T-F/download/a.png", False),
        ("https://slack.com.evil.example/a.png", False),
        ("https://evilslack.com/a.png", False),
        ("not a url", False),
    ],
)
def test_the_token_goes_to_slack_hosts_only(url: str, trusted: bool) -> None:
    assert is_slack_url(url, "https://slack.com/api/") is trusted
