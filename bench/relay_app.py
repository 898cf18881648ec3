"""The simplest complete app: the recording app, plus each turn's Letta call(s) and posts, made in a task.

What an app that does the bridge's job must do at the least, and nothing more: record the event in SQLite before
the ack (as `bench/recording_app.py` does), then send the text to the channel's group and post each agent's reply
in the thread, on keep-alive connections, with the same calls as the bench's floor (`bench/floor.py`). A channel's
turns run one at a time in arrival order, as the bridge's do: a deque of events per channel and one worker task
while it is not empty (a waiting event costs a deque entry, not a task). Nothing else: no durable queue, no
once-only, no journal, no names, no notices. The
lower bound, on this machine, for the figures that ask an app to acknowledge and run turns in one process (the
acknowledgement under load, the fan-out).

Run as `python -m bench.relay_app` with the recording app's variables plus SLACK_API_URL, LETTA_BASE_URL,
RELAY_RUNNER (`server`: one group send; `bridge`: one send per agent, in order) and RELAY_CREWS (a JSON file:
channel -> {"group": id, "agents": [[id, name], ...]}).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.bare_app import serve
from bench.recording_app import recording_app


class Relay:
    """A worker task per channel with events waiting, on one HTTP session; held so that none is collected."""

    def __init__(self) -> None:
        self.crews: dict[str, dict[str, Any]] = json.loads(Path(os.environ["RELAY_CREWS"]).read_text())
        self.runner = os.environ["RELAY_RUNNER"]
        self.slack = os.environ["SLACK_API_URL"]
        self.letta = os.environ["LETTA_BASE_URL"].rstrip("/")
        self.auth = {"Authorization": f"Bearer {os.environ['SLACK_BOT_TOKEN']}"}
        self.tasks: set[asyncio.Task[None]] = set()
        self.waiting: dict[str, deque[dict[str, Any]]] = {}  # channel -> events; present while its worker runs
        self.session: aiohttp.ClientSession | None = None

    def start(self, event: dict[str, Any]) -> None:
        channel = str(event.get("channel", ""))
        if channel not in self.crews:
            return
        if channel in self.waiting:
            self.waiting[channel].append(event)
            return
        self.waiting[channel] = deque([event])
        task = asyncio.create_task(self._work(channel))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _work(self, channel: str) -> None:
        queue = self.waiting[channel]
        try:
            while queue:
                try:
                    await self.turn(queue[0])
                except aiohttp.ClientError:
                    pass  # that turn is lost; the channel's next ones still run
                queue.popleft()
        finally:
            del self.waiting[channel]

    async def _call(self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        async with self.session.post(url, json=body, headers=headers) as response:
            return await response.json(content_type=None)

    async def _send(self, path: str, text: str) -> list[dict[str, Any]]:
        message = {"role": "user", "content": [{"type": "text", "text": text}]}
        answer = await self._call(f"{self.letta}{path}", {"messages": [message]})
        return [m for m in answer.get("messages", []) if m.get("message_type") == "assistant_message"]

    async def _post(self, channel: str, thread: str, name: str, text: str) -> None:
        body = {"channel": channel, "thread_ts": thread, "text": text or "…", "username": name}
        await self._call(f"{self.slack}chat.postMessage", body, self.auth)

    async def turn(self, event: dict[str, Any]) -> None:
        """One turn of a channel that has a crew (`start` drops the others)."""
        crew = self.crews[event["channel"]]
        channel, thread, text = event["channel"], event.get("thread_ts") or event["ts"], event.get("text", "")
        if self.runner == "server":  # a group's messages name the agent that wrote them
            for reply in await self._send(f"/v1/groups/{crew['group']}/messages", text):
                await self._post(channel, thread, str(reply.get("name") or "agent"), str(reply["content"]))
            return
        for agent_id, name in crew["agents"]:
            replies = await self._send(f"/v1/agents/{agent_id}/messages", text)
            await self._post(channel, thread, name, " ".join(str(r["content"]) for r in replies))

    async def close(self) -> None:
        """Turns still waiting are dropped: a baseline keeps no queue across a stop."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()


def relay_app() -> web.Application:
    relay = Relay()
    app = recording_app(after=lambda body: relay.start(body.get("event", {})))

    async def stop(_app: web.Application) -> None:
        await relay.close()

    app.on_cleanup.insert(0, stop)
    return app


if __name__ == "__main__":
    asyncio.run(serve(relay_app()))
