"""The floor: the calls the bridge makes on a turn's critical path, made directly by the bench.

A reaction, the Letta send(s) and one post per agent, in the bridge's order, over keep-alive connections.
What that takes is the fakes' own time on this machine, which the bridge's figures are set against.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp

from bench.fakes_proc import Crew, FakesProcess
from tests.e2e.harness import BOT_TOKEN


def _letta_send(crew: Crew, runner: str, index: int) -> tuple[str, dict[str, Any]]:
    message = {
        "role": "user",
        "content": [{"type": "text", "text": "floor"}],
        "otid": str(uuid.uuid4()),
        "name": "maria",
    }
    if runner == "server":
        return f"/v1/groups/{crew.group_id}/messages", {"messages": [message]}
    return f"/v1/agents/{crew.agents[index][0]}/messages", {"messages": [message]}


async def floor_turn(proc: FakesProcess, crew: Crew, runner: str, client: aiohttp.ClientSession, n: int) -> float:
    """The same critical-path calls the bridge makes for one turn, made directly: the fakes' own time."""
    slack, letta = proc.slack_api_url, proc.letta_url
    auth = {"Authorization": f"Bearer {BOT_TOKEN}"}
    thread = f"{int(time.time())}.{n:06d}"
    began = time.monotonic()

    async def call(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        async with client.post(url, json=body, headers=headers) as response:
            await response.read()

    async def post(name: str) -> None:
        await call(
            f"{slack}chat.postMessage",
            {"channel": crew.channel, "thread_ts": thread, "text": "hi", "username": name},
            auth,
        )

    await call(f"{slack}reactions.add", {"channel": crew.channel, "timestamp": thread, "name": "eyes"}, auth)
    if runner == "server":
        path, body = _letta_send(crew, runner, 0)
        await call(letta + path, body)
        for _, name in crew.agents:
            await post(name)
    else:
        for index, (_, name) in enumerate(crew.agents):
            path, body = _letta_send(crew, runner, index)
            await call(letta + path, body)
            await post(name)
    return time.monotonic() - began


async def floor_fanout(proc: FakesProcess, crews: list[Crew], runner: str) -> float:
    """Every crew's floor turn at once; returns seconds until the last one's last post was answered."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:
        began = time.monotonic()
        await asyncio.gather(*(floor_turn(proc, crew, runner, client, i) for i, crew in enumerate(crews)))
        return time.monotonic() - began
