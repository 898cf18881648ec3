"""A stop word in a direct message (Slack's agent view; DEFAULT_TARGET set) never has a mention: like a follow-up
without one, it stops only where something runs or waits in its thread, and is otherwise a reply to the agents
(docs/sessions.md: an agent that asked "proceed or cancel?" gets the answer). Before, a DM's "cancel" never
reached the agent, and the person was told "Nothing is running in this thread."."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.domain import Turn
from bridge.slack.listeners import events, sessions
from bridge.stop_request import Stopping
from bridge.store import Store, open_store
from bridge.tasks import Tasks
from tests.fakes.signing import event_body, next_ts
from tests.fakes.slack import FakeSlack
from tests.unit.test_stop_word_once import ASKER, TEAM, Handler, Running, _authorize

DM = "D0123ABCD"


class Accepted:
    def __init__(self) -> None:
        self.turns: list[Turn] = []

    async def accept(self, turn: Turn) -> None:
        self.turns.append(turn)


def _in_a_dm(tmp_path: Path, running_first: bool, text: str) -> tuple[list[str], list[str], list[int], int | None]:
    """`text` replied in a DM thread (one turn there running first, or none): what Slack was asked to tell the
    person, the turns made, the turns stopped, and the running turn's id."""

    async def main(slack: FakeSlack) -> tuple[list[str], list[int], int | None]:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        try:
            app = AsyncApp(client=AsyncWebClient(base_url=slack.api_url), authorize=_authorize,
                           request_verification_enabled=False, process_before_response=True)
            relay, running_here, tasks = Accepted(), Running(), Tasks()
            handler = Handler(Stopping(store, running_here), tasks)
            events.register(app, relay, direct_messages=True, stops=handler)  # type: ignore[arg-type]  # a double
            sessions.register(app, handler)
            root = next_ts()
            running = await _running(store, root) if running_first else None
            ts = next_ts()
            event: dict[str, Any] = {"type": "message", "channel": DM, "channel_type": "im", "user": ASKER,
                                     "text": text, "ts": ts, "thread_ts": root, "event_ts": ts, "team": TEAM}
            request = AsyncBoltRequest(body=event_body(event).decode(),
                                       headers={"content-type": ["application/json"]}, mode="socket_mode")
            assert (await app.async_dispatch(request)).status == 200
            await tasks.stop(5.0)
            return [t.text for t in relay.turns], running_here.stopped, running
        finally:
            await store.close()

    with FakeSlack() as slack:
        slack.add_user(ASKER, "asker")
        made, stopped, running = asyncio.run(main(slack))
        return [str(e["text"]) for e in slack.ephemerals], made, stopped, running


async def _running(store: Store, root: str) -> int:
    turn = Turn(TEAM, DM, root, root, ASKER, "a slow question", event_id="Ev0ROOT")
    turn_id = await store.accept_turn(turn, "otid-root")
    assert turn_id is not None and await store.take_turn(turn_id)
    return turn_id


def test_cancel_replied_in_a_dm_thread_where_nothing_runs_reaches_the_agent(tmp_path: Path) -> None:
    told, made, stopped, _ = _in_a_dm(tmp_path, running_first=False, text="cancel")
    assert told == []  # not "Nothing is running in this thread."
    assert made == ["cancel"]
    assert stopped == []


def test_stop_in_a_dm_thread_where_a_turn_runs_stops_it(tmp_path: Path) -> None:
    told, made, stopped, running = _in_a_dm(tmp_path, running_first=True, text="stop")
    assert made == [] and stopped == [running], (told, made, stopped)
