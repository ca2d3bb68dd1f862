"""The fake model's own statistics endpoint, which a benchmark reads from another process."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.fakes.openai_server import FakeOpenAI, Fault

REQUEST = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}


async def stats(http: aiohttp.ClientSession, fake: FakeOpenAI) -> dict[str, Any]:
    async with http.get(f"{fake.base_url}/_fake/stats") as response:
        found: dict[str, Any] = await response.json()
        return found


async def test_stats_tell_the_peak_of_requests_at_once_since_the_last_read(
    fake_openai: FakeOpenAI,
) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{fake_openai.base_url}/chat/completions"
        async with http.post(url, json=REQUEST) as response:
            assert response.status == 200
        first = await stats(http, fake_openai)
        assert (first["max_in_flight"], first["in_flight"], first["requests"]) == (1, 0, 1)
        assert first["cpu_seconds"] > 0
        assert (await stats(http, fake_openai))["max_in_flight"] == 0

        # Two answers that never come: both are in flight for as long as the test looks (the
        # stream's headers arrive once the fake counts a request in).
        fake_openai.fail_next(Fault(stall_after=0), Fault(stall_after=0))
        stalled = [await http.post(url, json={**REQUEST, "stream": True}) for _ in range(2)]
        try:
            now = await stats(http, fake_openai)
            assert (now["max_in_flight"], now["in_flight"]) == (2, 2)
            # Still running, so they are the floor of the next stretch's peak.
            assert (await stats(http, fake_openai))["max_in_flight"] == 2
        finally:
            for response in stalled:
                response.close()
