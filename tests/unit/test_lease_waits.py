"""A worker frozen (a host pause, a blocked event loop) in one of the waits today's branches put between a lease
check and a Slack or Letta call (a rate limit, a busy conversation, an earlier send's run) past its binding's
lease: when it thaws, the call is not made, as for every other step (test_leases.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.clients import SharedAgentLocks
from bridge.slack.live import LiveMessages
from bridge.slack.post import Author, SlackPoster
from tests.fakes.slack import FakeSlack
from tests.unit.test_leases import LEASE, FakeLockStore, FakeStore, under_lease


class TakenOverStore(FakeStore):
    """The lease another process took while this one was frozen: the renewal, a database round trip, says so."""

    async def renew_binding(self, *_: Any) -> bool:
        self.renewals += 1
        await asyncio.sleep(0.3)
        return False


def test_a_worker_frozen_in_a_rate_limited_draft_replace_does_not_write_over_the_draft_after_it() -> None:
    """Slack rate-limited the reply written over its draft (chat.update) and the process froze before the call
    was made again, past its lease. The other process finished the turn meanwhile; the thawed worker's retry
    came before its keeper heard the lease was lost and wrote its reply over the other's (limits' waits inside
    live.py made the call again without looking at the lease, as post.py does before each try)."""
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        root = slack.add_message("C1", "hi")

        class FreezesOnThe429(AsyncWebClient):
            async def chat_update(self, **kwargs: Any) -> Any:  # type: ignore[override]
                try:
                    return await super().chat_update(**kwargs)
                except Exception:
                    time.sleep(1.2 * LEASE)  # frozen as the 429 came back: nothing runs, the keeper neither
                    raise

        client = FreezesOnThe429(token=slack.bot_token, base_url=slack.api_url)
        live = LiveMessages(client, mode="update")

        async def stalled() -> str:
            draft = await live.start("C1", root, "alice is wri", "alice is wri", Author("alice"), ("T1", "U1"))
            assert draft is not None
            await client.chat_update(channel="C1", ts=draft.ts, text="the other process's reply")
            slack.fail_next("chat.update", error="ratelimited", headers={"retry-after": "0"})
            return await under_lease(
                lambda: live.replace_with("C1", draft.ts, "this process's reply", False, (), draft),
                TakenOverStore(),
                done="replaced",
            )

        assert asyncio.run(stalled()) == "cancelled"
        assert [m["text"] for m in slack.messages("C1", root) if m.get("bot_id")] == ["the other process's reply"]


def test_a_worker_frozen_while_an_earlier_send_runs_out_asks_no_agent_when_it_runs_again() -> None:
    """Before its first send to an agent the client waits while Letta lists a run of it still going (an earlier
    process's send, killed mid-send). The process froze in that wait past its lease; the one that took the
    binding over asked the agent meanwhile. Thawed, the worker's next look found no run going and sent the same
    question again: the lease had been checked once, when the lock was granted, not after the wait."""
    from bridge.letta.client import LettaClient

    sent: list[str] = []

    class Client(LettaClient):
        looks = 0

        async def active_runs(self, agent_id: str, conversation_id: str | None = None, since: Any = None) -> Any:
            self.looks += 1
            if self.looks == 1:
                return [{"id": "run-1", "status": "running"}]
            time.sleep(1.2 * LEASE)  # frozen in the wait, as the next look's answer came: the keeper runs no more
            return []

        async def _send(self, path: str, body: dict[str, Any]) -> Any:
            sent.append(path)
            return {"messages": []}

    async def stalled() -> str:
        client = Client("http://127.0.0.1:9", busy_wait=5.0)
        client.locks = SharedAgentLocks(FakeLockStore())  # type: ignore[arg-type]
        return await under_lease(
            lambda: client.send_agent("agent-1", {"role": "user", "content": "hi"}), TakenOverStore(), done="sent"
        )

    assert asyncio.run(stalled()) == "cancelled"
    assert sent == []


def test_a_worker_frozen_in_the_slack_clients_own_rate_limit_wait_posts_nothing_when_it_runs_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """chat.postMessage answered 429: slack_sdk's handler on the bridge's client (CountedRateLimits) waits the
    Retry-After and makes the post again itself, after post.py looked at the lease. A process frozen in that wait
    past its lease thawed and posted what the process that took the binding over had posted already."""
    from types import SimpleNamespace

    from slack_sdk.http_retry import builtin_async_handlers

    from bridge.slack.metered import CountedRateLimits, MeteredSlackClient

    async def frozen_wait(_: float) -> None:
        time.sleep(1.2 * LEASE)  # the process froze while it waited: nothing of it runs, its keeper neither

    monkeypatch.setattr(builtin_async_handlers, "asyncio", SimpleNamespace(sleep=frozen_wait))
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        root = slack.add_message("C1", "hi")
        client = MeteredSlackClient(token=slack.bot_token, base_url=slack.api_url)
        client.retry_handlers.append(CountedRateLimits(client, max_retry_count=3))
        poster = SlackPoster(client)
        [part] = poster.parts("alice", "the next part")

        async def stalled() -> str:
            await poster.learn()
            slack.fail_next("chat.postMessage", error="ratelimited", headers={"retry-after": "1"})
            return await under_lease(lambda: poster.post("C1", root, part), TakenOverStore(), done="posted")

        assert asyncio.run(stalled()) == "cancelled"
        assert [m for m in slack.messages("C1", root) if m.get("bot_id")] == []


def test_a_worker_frozen_while_a_busy_conversation_is_waited_out_sends_nothing_when_it_runs_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Letta answered the send 409, the conversation busy with another run (Cloud says so in words only): the
    transport waits and sends again, up to LETTA busy_wait, after the lease was looked at once, when the agent
    lock was granted. A process frozen in that wait past its lease thawed and sent the question again."""
    from bridge.letta import transport
    from bridge.letta.client import LettaClient
    from bridge.letta.errors import Kind, LettaError

    sent: list[str] = []

    class Frozen:
        def __getattr__(self, name: str) -> Any:
            return getattr(asyncio, name)

        @staticmethod
        async def sleep(_: float) -> None:
            time.sleep(1.2 * LEASE)  # frozen in the wait: nothing of the process runs, its keeper neither

    class Client(LettaClient):
        async def active_runs(self, agent_id: str, conversation_id: str | None = None, since: Any = None) -> Any:
            return []

        async def _request(self, method: str, path: str, params: Any = None, json: Any = None) -> Any:
            if not sent:
                sent.append("refused")
                raise LettaError(Kind.CONFLICT, "conversation is busy with another active run", status=409)
            sent.append(path)
            return {"messages": []}

    monkeypatch.setattr(transport, "asyncio", Frozen())

    async def stalled() -> str:
        client = Client("http://127.0.0.1:9", busy_wait=5.0, retry_base=0.01)
        client.locks = SharedAgentLocks(FakeLockStore())  # type: ignore[arg-type]
        return await under_lease(
            lambda: client.send_agent("agent-1", {"role": "user", "content": "hi"}), TakenOverStore(), done="sent"
        )

    assert asyncio.run(stalled()) == "cancelled"
    assert sent == ["refused"]
