"""Files the bot sends on Slack: a command's file, in a direct message with whoever asked.

A command's answer is ephemeral (only the person who asked sees it), and an ephemeral message
cannot carry a file. The file goes to a direct message with that person instead, where it stays
just as private: `conversations.open` finds (or opens) the DM, and slack_sdk's
`files_upload_v2` uploads it as Slack documents: `files.getUploadURLExternal` for an upload
URL, a POST of the bytes to that URL, then `files.completeUploadExternal` to share it in the DM.

That needs the `im:write` and `files:write` scopes. Without them, or on any other failure, the
file is left out (the person still has the answer) and one warning says what went wrong.
"""

from __future__ import annotations

import logging

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapter import ReplyFile

from .stream import error_code

logger = logging.getLogger(__name__)

SENT_IN_DM = "I sent you the full history as a file ({name}) in a direct message."
"""Added to a command's answer once its file is in the person's DM."""


async def send_in_dm(client: AsyncWebClient, user: str, file: ReplyFile, *, comment: str) -> bool:
    """Share `file` in a direct message with `user`, introduced by `comment` (mrkdwn).

    Returns:
        Whether the file was shared; a failure is logged (one warning) and never raised.
    """
    try:
        opened = await client.conversations_open(users=user)
        channel: dict[str, object] = opened.get("channel") or {}
        await client.files_upload_v2(
            channel=str(channel.get("id") or ""),
            filename=file.name,
            content=file.content,
            title=file.title or file.name,
            initial_comment=comment,
        )
    except SlackApiError as exc:
        logger.warning(
            "Could not send %s to %s in a direct message: %s%s",
            file.name,
            user,
            error_code(exc),
            _scope_hint(exc),
        )
        return False
    except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
        # The upload URL refused the bytes, or Slack could not be reached even after the
        # client's retries.
        logger.warning(
            "Could not send %s to %s in a direct message: %s: %s",
            file.name,
            user,
            type(exc).__name__,
            exc,
        )
        return False
    return True


def _scope_hint(exc: SlackApiError) -> str:
    """What to do about a missing scope, which Slack names in `needed`; "" for other errors."""
    data = getattr(exc.response, "data", None)
    needed = data.get("needed") if isinstance(data, dict) else None
    if not needed:
        return ""
    return (
        f" (the bot token lacks {needed}: add it under OAuth & Permissions, or update the app "
        "from slack-manifest.yml, and reinstall the app)"
    )
