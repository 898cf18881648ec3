"""revBY: the app installed again while a turn's auth.test of the old token is still in flight: the next turn
asks Slack about the new token, not keep what the old token's late answer said."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.slack.post import SlackPoster

OLD = "chat:write,channels:history"
NEW = "chat:write,chat:write.customize,channels:history"


class _Answer(dict):
    def __init__(self, scopes: str) -> None:
        super().__init__(ok=True, bot_id="B0123ABCD")
        self.headers = {"x-oauth-scopes": scopes}


class _Client:
    def __init__(self) -> None:
        self.scopes = OLD
        self.calls = 0
        self.release = asyncio.Event()

    async def auth_test(self) -> Any:
        self.calls += 1
        scopes = self.scopes  # the token the call was made with
        if self.calls == 1:
            await self.release.wait()
        return _Answer(scopes)


def test_a_reinstall_during_the_old_tokens_auth_test_is_learnt() -> None:
    async def run() -> None:
        client = _Client()
        poster = SlackPoster(client)  # type: ignore[arg-type]
        first = asyncio.ensure_future(poster.learn())  # a turn asks about the old token
        while client.calls == 0:
            await asyncio.sleep(0)
        client.scopes = NEW  # the admin installs again, granting chat:write.customize
        poster.relearn()
        client.release.set()  # the old token's answer arrives after the reinstall
        await first
        await poster.learn()  # the next turn
        assert poster.author("alice").username == "alice", client.calls

    asyncio.run(run())
