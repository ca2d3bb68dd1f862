"""Files people share in Slack: described for the core, downloaded only when it asks.

A message with files carries them in `files` (subtype `file_share`), each with a name, MIME
type, size and private URLs that open only with a token allowed to read files (`files:read`).
`SlackFiles` describes each as an `Attachment` whose `fetch` downloads `url_private_download`
with the bot token, on one HTTP session the adapter opens at start and closes at the end.
The core decides whether a file is downloaded at all and how the model gets it.

Without `files:read` Slack does not answer 401 or 403: it serves its sign-in page, as HTML with
status 200. A download that gets HTML for a file that is not HTML is that page, and says so.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.adapter import Attachment

from ..downloads import DownloadError, Downloads

logger = logging.getLogger(__name__)

MISSING_SCOPE = (
    "Slack sent its sign-in page instead of the file %s: the bot token lacks the files:read "
    "scope. Add files:read under OAuth & Permissions (or update the app from "
    "slack-manifest.yml) and reinstall the app."
)


@dataclass(frozen=True)
class SharedFile:
    """What a message event says about one shared file."""

    id: str
    name: str
    mimetype: str
    size: int | None
    url: str | None
    """`url_private_download` (or `url_private`); None when Slack left the file out (a file
    deleted, or hidden by the workspace's plan)."""


def shared_files(event: Mapping[str, Any]) -> list[SharedFile]:
    """The files of a message event, in the order Slack lists them."""
    found: list[SharedFile] = []
    for file in event.get("files") or []:
        if not isinstance(file, Mapping):
            continue
        file_id = str(file.get("id") or "")
        size = file.get("size")
        url = file.get("url_private_download") or file.get("url_private")
        found.append(
            SharedFile(
                id=file_id,
                name=str(file.get("name") or file.get("title") or file_id or "file"),
                mimetype=str(file.get("mimetype") or ""),
                size=size if isinstance(size, int) and size >= 0 else None,
                url=str(url) if url else None,
            )
        )
    return found


def is_slack_url(url: str, api_url: str) -> bool:
    """Whether `url` is on the Web API's host or one of its subdomains, over the same scheme
    (``https://files.slack.com/...`` for ``https://slack.com/api/``)."""
    api, parts = urlsplit(api_url), urlsplit(url)
    api_host, host = (api.hostname or "").lower(), (parts.hostname or "").lower()
    return (
        bool(api_host)
        and parts.scheme == api.scheme
        and (host == api_host or host.endswith("." + api_host))
    )


class SlackFiles(Downloads):
    """Downloads shared files with the bot token, on one session for the adapter's lifetime.

    Args:
        token: The bot token (``xoxb-``); it needs the `files:read` scope.
        api_url: The Web API's base URL: the token is only ever sent to its host or that
            host's subdomains (``files.slack.com`` for ``slack.com``).
    """

    def __init__(self, token: str, *, api_url: str) -> None:
        super().__init__()
        self._token = token
        self._api_url = api_url
        self._told_scope = False

    def attachments(self, event: Mapping[str, Any]) -> tuple[Attachment, ...]:
        """The event's files as the core sees them; nothing is downloaded yet."""
        return tuple(
            Attachment(
                name=file.name,
                content_type=file.mimetype,
                size=file.size,
                fetch=functools.partial(self.download, file),
            )
            for file in shared_files(event)
        )

    async def download(self, file: SharedFile, limit: int) -> bytes:
        """The file's bytes, read in chunks and never more than `limit` of them.

        Raises:
            DownloadError: No link, not a Slack link, HTTP failure, Slack's sign-in page
                (no `files:read`), or more than `limit` bytes.
        """
        if file.url is None:
            raise DownloadError(f"Slack gave no download link for {file.name}")
        if not is_slack_url(file.url, self._api_url):
            # The token opens every file the bot can see: it goes to Slack and nowhere else.
            raise DownloadError(f"{file.name} is not hosted by Slack")
        headers = {"Authorization": f"Bearer {self._token}"}

        def not_a_sign_in_page(response: aiohttp.ClientResponse) -> None:
            if response.content_type == "text/html" and file.mimetype != "text/html":
                self._tell_scope(file.name)
                raise DownloadError(f"Slack sent its sign-in page for {file.name} (files:read)")

        return await self.get(file.url, limit, headers=headers, check=not_a_sign_in_page)

    def _tell_scope(self, name: str) -> None:
        # A missing scope stays missing until someone reinstalls the app: say it once loudly.
        if self._told_scope:
            logger.info(MISSING_SCOPE, name)
            return
        self._told_scope = True
        logger.warning(MISSING_SCOPE, name)
