"""Letta stopped behind a plain reverse proxy (nginx, Caddy, an ALB): every request is answered with the
proxy's own 502 page. After one send met it (its key unsettled), the next turn's send to that agent is held for
busy_wait (LETTA_BUSY_WAIT_SECONDS, 5 minutes by default) looking at the run list again every 2 s, and only then
made and its failure said. A list failing on the way is now looked at again for RUNS_PASSING_FOR only (a blip
passes in seconds)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.letta.client import LettaClient
from bridge.letta.errors import LettaError
from bridge.letta.left_runs import RUNS_PASSING_FOR
from tests.fakes.letta import FakeLetta

MESSAGE = {"role": "user", "content": "hi", "otid": "o-1"}
NGINX_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway"
             b"</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n")


def test_letta_down_behind_nginx_does_not_hold_each_send_for_busy_wait() -> None:
    with FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")

        async def main() -> float:
            client = LettaClient(letta.base_url, busy_wait=20.0)
            try:
                await client.send_agent(alice, MESSAGE)  # Letta up: alice's key is quiet
                letta.fail_next("*", r".*", 502, raw=NGINX_502, headers={"server": "nginx/1.25.3",
                                                                         "content-type": "text/html"}, times=10_000)
                with pytest.raises(LettaError):  # Letta stops; nginx answers 502 to the send
                    await client.send_agent(alice, {**MESSAGE, "otid": "o-2"})
                started = time.monotonic()
                with pytest.raises(LettaError) as failed:  # the next turn's send, Letta still down
                    await client.send_agent(alice, {**MESSAGE, "otid": "o-3"})
                assert failed.value.status == 502
                return time.monotonic() - started
            finally:
                await client.aclose()

        took = asyncio.run(main())
        looks = [r for r in letta.requests if r.method == "GET" and r.path.startswith("/v1/runs")]
        assert took < RUNS_PASSING_FOR + 3.0, f"the send's failure was said after {took:.1f}s ({len(looks)} looks)"


def test_a_rate_limit_letta_asks_to_wait_out_for_an_hour_is_said_at_once_not_after_busy_wait() -> None:
    """Letta (Cloud) answers 429 with Retry-After: 3600 to every request: the transport says such a limit at once
    (MAX_RETRY_DELAY), but after a failed send the run list before the next send is looked at again for
    busy_wait, ignoring the Retry-After, and the failure is said only then."""
    with FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")

        async def main() -> float:
            client = LettaClient(letta.base_url, busy_wait=6.0)
            try:
                await client.send_agent(alice, MESSAGE)
                letta.fail_next("*", r".*", 429, body={"detail": "Rate limit exceeded"},
                                headers={"retry-after": "3600"}, times=10_000)
                with pytest.raises(LettaError):
                    await client.send_agent(alice, {**MESSAGE, "otid": "o-2"})
                started = time.monotonic()
                with pytest.raises(LettaError) as failed:
                    await client.send_agent(alice, {**MESSAGE, "otid": "o-3"})
                assert failed.value.status == 429
                return time.monotonic() - started
            finally:
                await client.aclose()

        took = asyncio.run(main())
        looks = [r for r in letta.requests if r.method == "GET" and r.path.startswith("/v1/runs")]
        assert took < 2.0, f"the send's failure was said after {took:.1f}s ({len(looks)} run-list looks)"
