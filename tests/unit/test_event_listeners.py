"""bridge/slack/listeners: events reach the bridge keyed by the installing workspace, as Bolt's context.team_id
(which keys every binding /letta makes) reads it, also in a Slack Connect channel another organisation hosts; an
edit reaches the relay however little it leaves of the message."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.domain import Turn
from bridge.notice_words import TAKEN_BACK
from bridge.slack.listeners import events, sessions
from tests.reference import SLACK, load

INSTALLED = "T0123ABCD"
# A mention captured in a Slack Connect channel hosted by another organisation's workspace (its `_source` says how).
CONNECT = load(SLACK / "events" / "app_mention_slack_connect.json")


async def _authorize(**_: Any) -> AuthorizeResult:
    return AuthorizeResult(enterprise_id=None, team_id=INSTALLED, bot_user_id="U0BOTABCD", bot_id="B0123ABCD",
                           bot_token="xoxb-test")  # a fake token, never sent


class Stops:
    """The StopHandler's surface the listener uses: which workspace a stop was asked for."""

    def __init__(self) -> None:
        self.teams: list[str] = []
        self.tasks: list[asyncio.Future[None]] = []
        self.prompts: tuple[str, ...] = ()

    async def on_session_stopped(self, client: AsyncWebClient, team: str, event: dict[str, Any]) -> None:
        self.teams.append(team)

    async def first_event(self, body: dict[str, Any]) -> bool:
        return True

    def spawn(self, work: Awaitable[None], name: str, press: bool = False) -> bool:
        self.tasks.append(asyncio.ensure_future(work))
        return True


class Relay:
    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.edits: list[tuple[str, ...]] = []
        self.withdrawn: list[tuple[str, ...]] = []

    async def accept(self, turn: Turn) -> None:
        self.turns.append(turn)

    async def edit(self, *args: str, asks: str | None = "") -> None:
        self.edits.append(args)

    async def withdraw(self, *args: str, asks: str | None = "") -> None:
        self.withdrawn.append(args)

    async def edited_away(self, *args: str, asks: str | None = "") -> None:
        raise AssertionError("not an edit that moves the message away from the bot")


async def _dispatch(app: AsyncApp, body: dict[str, Any]) -> None:
    request = AsyncBoltRequest(body=json.dumps(body), headers={"content-type": ["application/json"]},
                               mode="socket_mode")
    assert (await app.async_dispatch(request)).status == 200


def _app() -> AsyncApp:
    return AsyncApp(authorize=_authorize, request_verification_enabled=False, process_before_response=True)


def _slack_connect(body: dict[str, Any]) -> dict[str, Any]:
    """The event as it comes from a Slack Connect channel hosted by another organisation's workspace: in the
    captured Slack Connect envelope (the host's team ids, the installation's authorizations), its own event id."""
    envelope = {k: v for k, v in CONNECT.items() if k not in ("event", "event_id", "_source")}
    return {**copy.deepcopy(body), **envelope}


def test_a_stop_pressed_in_a_slack_connect_channel_stops_the_installing_workspaces_turns() -> None:
    async def main() -> list[str]:
        app = _app()
        stops = Stops()
        sessions.register(app, stops)  # type: ignore[arg-type]  # a double
        await _dispatch(app, _slack_connect(load(SLACK / "events" / "agent_session_stopped.json")))
        await asyncio.sleep(0.01)
        return stops.teams

    assert asyncio.run(main()) == [INSTALLED]


def test_a_mention_by_another_organisations_person_is_a_turn_of_the_installing_workspace() -> None:
    async def main() -> list[Turn]:
        app, relay = _app(), Relay()
        events.register(app, relay)  # type: ignore[arg-type]  # a double
        await _dispatch(app, CONNECT)
        return relay.turns

    [turn] = asyncio.run(main())
    said = CONNECT["event"]
    assert CONNECT["team_id"] != INSTALLED, "the capture's envelope names the host's workspace"
    assert (turn.team_id, turn.channel_id, turn.user_id) == (INSTALLED, said["channel"], said["user"])


def test_the_agent_view_moving_to_another_channel_is_acknowledged() -> None:
    """Slack's agent-app guides subscribe an app to assistant_thread_context_changed: with no listener Bolt
    answered 404 ("Unhandled request", a warning each time a person moved between channels with the agent view
    open) and Slack delivered it again. The bridge has no use for the context: it is acknowledged, nothing more."""

    async def main() -> None:
        app, stops = _app(), Stops()
        sessions.register(app, stops)  # type: ignore[arg-type]  # a double
        await _dispatch(app, load(SLACK / "events" / "assistant_thread_context_changed.json"))
        assert stops.tasks == []

    asyncio.run(main())


IMAGE = {"id": "F0123ABCD", "name": "chart.png", "mimetype": "image/png", "filetype": "png", "size": 68,
         "url_private_download": "https://files.slack.com/files-pri/T0123ABCD-F0123ABCD/download/chart.png"}
MENTION_TS = "1764064800.123456"


EDITED_AT = "1764064830.000000"  # the edits' time, as app_mention_edited.json has it


def _changed(text: str, was: str, files: list[dict[str, Any]], thread_ts: str = "") -> dict[str, Any]:
    """Slack's message_changed for a person's edit of their message (reference/slack/events/message_changed.json)."""
    message: dict[str, Any] = {"type": "message", "user": "U0123ABCD", "text": text, "ts": MENTION_TS,
                               "edited": {"user": "U0123ABCD", "ts": EDITED_AT}}
    previous: dict[str, Any] = {"type": "message", "user": "U0123ABCD", "ts": MENTION_TS, "text": was}
    for said in (message, previous):
        if files:
            said["files"] = files
        if thread_ts:
            said["thread_ts"] = thread_ts
    event = {"type": "message", "subtype": "message_changed", "hidden": True, "channel": "C0123ABCD",
             "channel_type": "channel", "ts": "1764064830.000200", "event_ts": "1764064830.000200",
             "message": message, "previous_message": previous}
    envelope = {k: v for k, v in load(SLACK / "events" / "app_mention_edited.json").items() if k != "event"}
    return {**envelope, "event_id": "Ev0EDIT0001", "event": event}


def _relayed(*bodies: dict[str, Any]) -> Relay:
    async def main() -> Relay:
        app, relay = _app(), Relay()
        events.register(app, relay)  # type: ignore[arg-type]  # a double
        for body in bodies:
            await _dispatch(app, body)
        return relay

    return asyncio.run(main())


def test_a_waiting_mention_whose_words_are_edited_away_keeps_only_its_image() -> None:
    """revBF: `@bot delete the prod database, here is the chart` with an image, waiting behind another turn, edited
    down to `@bot` and the image: the edit was dropped, and the turn sent the words the person took out."""
    was = "<@U0BOTABCD> delete the prod database, here is the chart"
    relay = _relayed(_changed("<@U0BOTABCD>", was, [IMAGE]))
    assert relay.edits == [("T0123ABCD", "C0123ABCD", MENTION_TS, "", ("F0123ABCD",), EDITED_AT)], "the image alone"
    assert relay.withdrawn == [] and relay.turns == []


def test_a_waiting_mention_or_follow_up_edited_down_to_nothing_is_taken_back() -> None:
    """revBF: with no files, an edit down to the bot's mention (or a follow-up's to nothing visible) left the
    waiting turn with its old words; a fresh mention of nothing is ignored, so the edit takes the turn back (the
    relay does, once the store finds it has no files either)."""
    mention = load(SLACK / "events" / "app_mention_edited.json")
    mention["event"]["text"] = "<@U0BOTABCD>"
    edits = (
        _changed("<@U0BOTABCD>", "<@U0BOTABCD> delete the prod database", []),
        mention,
        _changed("\u200b", "thanks, also check the migration logs", [], thread_ts="1764064700.000100"),
        _changed("<@U0BOTABCD>", "thanks, also check the migration logs", [], thread_ts="1764064700.000100"),
    )
    relay = _relayed(*edits)
    key = ("T0123ABCD", "C0123ABCD", MENTION_TS)
    # None of them lists files (no `files` key): each is an edit to no words, which the relay takes back as
    # "emptied" when the turn has no files (store/slack_changes.edit_turn; revDP: one with a file answers it).
    assert relay.edits == [(*key, "", None, EDITED_AT)] * 4
    assert relay.withdrawn == [] and relay.turns == []


def test_a_waiting_mention_edited_to_mention_no_one_is_said_to_no_longer_mention_the_bot() -> None:
    """A top-level mention edited so that it mentions neither the bot nor anyone else is taken back with words that
    say so; its queue notice said it was "edited to speak to someone else", and nobody else was spoken to. One that
    now opens with a colleague's mention is still said to speak to someone else."""
    was = "<@U0BOTABCD> restart staging"
    relay = _relayed(_changed("restart staging", was, []), _changed("<@U0COLLEAGUE> restart staging", was, []))
    key = ("T0123ABCD", "C0123ABCD", MENTION_TS)
    assert relay.withdrawn == [(*key, "unmentioned", EDITED_AT), (*key, "addressed", EDITED_AT)], "with the edit's time"
    how, notice = TAKEN_BACK["unmentioned"]
    assert "no longer mentions" in how and "no longer mentions" in notice and "someone else" not in notice
