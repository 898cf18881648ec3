"""A stop is acted on once, whichever process Slack delivers it to: several bridge processes on one Postgres
database (a PaaS's dynos), Slack's retry of the event reaching another one, or a `stop` mention's message twin.
The first copy stops the thread; a later copy must neither stop again nor answer "Nothing is running"."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.domain import Turn
from bridge.slack.listeners import events, sessions
from bridge.slack.permissions import Policy
from bridge.slack.sessions import Sessions
from bridge.stop_request import Stopping
from bridge.store import Store, open_store
from bridge.tasks import Tasks
from tests.fakes.signing import event_body, mention_event, next_ts
from tests.fakes.slack import FakeSlack
from tests.reference import SLACK, load

TEAM, CHANNEL, ASKER, STRANGER = "T0123ABCD", "C0123ABCD", "U0123ABCD", "U0STRANGR"


async def _authorize(**_: Any) -> AuthorizeResult:
    return AuthorizeResult(enterprise_id=None, team_id=TEAM, bot_user_id="U0BOTABCD", bot_id="B0123ABCD",
                           bot_token="xoxb-test-token")  # the fake Slack's


class Running:
    """The turns running in one process: none here, so each stop is only recorded (as for another process's)."""

    def __init__(self) -> None:
        self.stopped: list[int] = []

    async def stop(self, turn_id: int, by: str) -> bool:
        self.stopped.append(turn_id)
        return False


class SessionStates:
    """The thread's session as the handler sets it (Slack's agent sessions, not called here)."""

    def __init__(self) -> None:
        self.states: list[str] = []

    async def set(self, channel: str, thread_ts: str, state: str) -> None:
        self.states.append(state)


class Handler(sessions.StopHandler):
    """The real handler, the session's states kept by a double (what it tells people goes to the fake Slack)."""

    def __init__(self, stopping: Stopping, tasks: Tasks) -> None:
        self.session = SessionStates()
        super().__init__(stopping, self._sessions_of, tasks, Policy())

    def _sessions_of(self, _client: AsyncWebClient) -> Sessions:
        return self.session  # type: ignore[return-value]  # a double


class NoTurns:
    async def accept(self, turn: Turn) -> None:
        raise AssertionError(f"the stop word became a turn: {turn.text!r}")


class Process:
    """One bridge process's listeners, on its own store over the shared database."""

    def __init__(self, store: Store, slack: FakeSlack) -> None:
        self.app = AsyncApp(client=AsyncWebClient(base_url=slack.api_url), authorize=_authorize,
                            request_verification_enabled=False, process_before_response=True)
        self.tasks, self.running = Tasks(), Running()
        self.handler = Handler(Stopping(store, self.running), self.tasks)
        events.register(self.app, NoTurns(), stops=self.handler)  # type: ignore[arg-type]  # a double
        sessions.register(self.app, self.handler)

    async def deliver(self, body: bytes) -> None:
        request = AsyncBoltRequest(body=body.decode(), headers={"content-type": ["application/json"]},
                                   mode="socket_mode")
        assert (await self.app.async_dispatch(request)).status == 200
        await self.tasks.stop(5.0)


def _two_processes(url: str, body: Callable[[Store, Process, Process], Awaitable[None]]) -> list[str]:
    """Run `body` with two processes' listeners on the database; returns what Slack was asked to tell people."""

    async def main(slack: FakeSlack) -> None:
        first, second = open_store(url), open_store(url)
        await first.open()
        await second.open()
        try:
            await body(first, Process(first, slack), Process(second, slack))
        finally:
            await first.close()
            await second.close()

    with FakeSlack() as slack:
        slack.add_user(ASKER, "asker")
        slack.add_user(STRANGER, "stranger")
        asyncio.run(main(slack))
        return [str(e["text"]) for e in slack.ephemerals]


async def _running_turn(store: Store) -> tuple[int, str]:
    root = next_ts()
    turn = Turn(TEAM, CHANNEL, root, root, ASKER, "a slow question", event_id="Ev0ROOT")
    turn_id = await store.accept_turn(turn, "otid-root")
    assert turn_id is not None and await store.take_turn(turn_id)
    return turn_id, root


def test_a_stop_retried_to_another_process_stops_once_and_says_nothing_is_running_nowhere(database_url: str) -> None:
    async def body(store: Store, web1: Process, web2: Process) -> None:
        turn_id, root = await _running_turn(store)
        stop = event_body(mention_event("stop", thread_ts=root, user=ASKER), event_id="Ev0STOP1")
        await web1.deliver(stop)
        await web2.deliver(stop)  # Slack's retry of the same event, taken by the other dyno
        assert await store.turn_stopped_by(turn_id) == ASKER
        assert await store.unrun_end(turn_id) is None and await store.unrun_end(turn_id + 1000) is None  # it ran
        assert web1.running.stopped + web2.running.stopped == [turn_id]

    assert _two_processes(database_url, body) == []  # no "Nothing is running in this thread."


def test_a_stop_mentions_message_twin_in_another_process_is_not_a_second_stop(database_url: str) -> None:
    async def body(store: Store, web1: Process, web2: Process) -> None:
        turn_id, root = await _running_turn(store)
        mention = mention_event("stop", thread_ts=root, user=ASKER)
        twin = {**mention, "type": "message", "channel_type": "channel"}  # the same message, as message.channels
        await web1.deliver(event_body(twin))  # the twin first: a follow-up, quiet when nothing runs
        await web2.deliver(event_body(mention))
        assert web1.running.stopped + web2.running.stopped == [turn_id]

    assert _two_processes(database_url, body) == []


def _session_stopped(root: str, user: str) -> bytes:
    """Slack's Stop pressed on the thread's session (events/agent_session_stopped.json), as wire bytes."""
    body = copy.deepcopy(load(SLACK / "events" / "agent_session_stopped.json"))
    body["event"].update(channel=CHANNEL, thread_ts=root, user=user)
    return json.dumps(body).encode()


def test_slacks_stop_retried_to_another_process_leaves_the_session_to_the_stopped_turn(database_url: str) -> None:
    async def body(store: Store, web1: Process, web2: Process) -> None:
        turn_id, root = await _running_turn(store)
        stop = _session_stopped(root, ASKER)
        await web1.deliver(stop)
        await web2.deliver(stop)  # the retry: nothing runs any more, so it would set the session active
        assert web1.running.stopped + web2.running.stopped == [turn_id]
        assert web1.handler.session.states + web2.handler.session.states == []  # the turn's own end does it

    assert _two_processes(database_url, body) == []


def test_a_refused_stop_retried_to_another_process_is_refused_once(database_url: str) -> None:
    async def body(store: Store, web1: Process, web2: Process) -> None:
        turn_id, root = await _running_turn(store)
        stop = _session_stopped(root, STRANGER)
        await web1.deliver(stop)
        await web2.deliver(stop)
        assert await store.turn_stopped_by(turn_id) is None

    [refusal] = _two_processes(database_url, body)  # not said twice
    assert refusal.startswith("Only ") and f"<@{ASKER}>" in refusal
