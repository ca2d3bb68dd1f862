"""Downloading attachments for the core: one HTTP session per adapter, every read capped.

Both platforms serve files over plain HTTPS (Discord's CDN at signed URLs, Slack's private
URLs with the bot token). Each download is read in chunks and stopped as soon as it passes the
limit the core gives, so a file whose declared size is absent or wrong cannot fill memory, and a
host that stalls cannot hold a turn for long.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import aiohttp

CHUNK_BYTES = 64 * 1024
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=60.0, sock_connect=10.0)
"""60 s fits 10 MB on a slow link; a turn waits for its files before it holds its thread."""


class DownloadError(Exception):
    """A file could not be downloaded (an HTTP error, or larger than allowed)."""


async def download(
    session: aiohttp.ClientSession,
    url: str,
    limit: int,
    *,
    headers: Mapping[str, str] | None = None,
    check: Callable[[aiohttp.ClientResponse], None] | None = None,
) -> bytes:
    """The body at `url`, read in chunks.

    Args:
        session: The adapter's session.
        url: Where the file is.
        limit: The most bytes to accept.
        headers: Sent with the request (a token).
        check: Looks at the response before its body is read; raises `DownloadError` to
            refuse it (Slack's sign-in page served instead of the file, say).

    Raises:
        DownloadError: An HTTP status of 400 or more, a refused response, or more than
            `limit` bytes.
    """
    async with session.get(url, headers=headers, timeout=DOWNLOAD_TIMEOUT) as response:
        if response.status >= 400:
            raise DownloadError(f"HTTP {response.status} from the file's URL")
        if check is not None:
            check(response)
        if response.content_length is not None and response.content_length > limit:
            raise DownloadError(
                f"{response.content_length:,} bytes, more than the {limit:,} allowed"
            )
        body = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            body += chunk
            if len(body) > limit:
                # Content-Length can be absent or wrong; what arrives is what counts.
                raise DownloadError(f"more than the {limit:,} bytes allowed")
        return bytes(body)


class Downloads:
    """The adapter's one HTTP session for attachments, open between `open()` and `close()`."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        """Start the session (inside the running loop, as aiohttp requires)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def get(
        self,
        url: str,
        limit: int,
        *,
        headers: Mapping[str, str] | None = None,
        check: Callable[[aiohttp.ClientResponse], None] | None = None,
    ) -> bytes:
        """`download()` on this session; raises `DownloadError` when it is not open."""
        if self._session is None or self._session.closed:
            raise DownloadError("the adapter is not running")
        return await download(self._session, url, limit, headers=headers, check=check)
