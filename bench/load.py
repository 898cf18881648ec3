"""Signed Slack deliveries, prepared ahead of time, and the ways of sending them.

`open_loop` keeps a fixed schedule (request i leaves at start + i/rate) whatever the server does, so
a slow server cannot slow the offered load down; every request's lateness against its slot is kept,
which shows whether the generator itself kept up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from tests.e2e.harness import SIGNING_SECRET
from tests.fakes.signing import event_body, mention_event, signed_headers

JSON = "application/json"


@dataclass(frozen=True)
class Delivery:
    """One signed app_mention, ready to send. `ts` is the mention's message ts (its thread)."""

    channel: str
    ts: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Outcome:
    status: int
    sent: float  # loop time the request left
    latency: float  # seconds from leaving to the whole answer read
    late: float  # seconds the request left after its slot (open loop only)


def mentions(
    channels: Sequence[str], count: int, text: str = "what should we ship first?", thread_ts: str | None = None
) -> list[Delivery]:
    """`count` mentions, round-robin over `channels` (inside one thread with `thread_ts`), each signed now (Bolt
    accepts 5 minutes of skew)."""
    out = []
    for i in range(count):
        channel = channels[i % len(channels)]
        event = mention_event(f"{text} #{i}", channel=channel, thread_ts=thread_ts)
        body = event_body(event)
        out.append(Delivery(channel, event["ts"], body, signed_headers(SIGNING_SECRET, body, JSON)))
    return out


def session(limit: int = 256) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit), timeout=aiohttp.ClientTimeout(total=30))


async def send(client: aiohttp.ClientSession, url: str, delivery: Delivery, slot: float | None = None) -> Outcome:
    loop = asyncio.get_running_loop()
    sent = loop.time()
    try:
        async with client.post(url, data=delivery.body, headers=delivery.headers) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    return Outcome(status, sent, loop.time() - sent, 0.0 if slot is None else sent - slot)


async def open_loop(url: str, deliveries: Sequence[Delivery], rate: float) -> list[Outcome]:
    """Send at a fixed `rate` per second; each request is its own task, so none waits for another."""
    async with session() as client:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        tasks = []
        for i, delivery in enumerate(deliveries):
            slot = start + i / rate
            wait = slot - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(send(client, f"{url}/slack/events", delivery, slot)))
        return list(await asyncio.gather(*tasks))


async def burst(url: str, deliveries: Sequence[Delivery]) -> list[Outcome]:
    """All at once: every request started together, over as many connections as there are requests."""
    async with session(limit=len(deliveries) + 1) as client:
        return list(await asyncio.gather(*(send(client, f"{url}/slack/events", d) for d in deliveries)))


async def in_turn(url: str, deliveries: Sequence[Delivery]) -> list[Outcome]:
    """One after another, each waiting for the previous answer (a person typing fast in one channel)."""
    async with session(limit=4) as client:
        return [await send(client, f"{url}/slack/events", d) for d in deliveries]
