"""A streamed draft and its reply (bridge/slack/live.py, bridge/slack/tasks.py) against the fake Slack: a tool
call's details within Slack's 256 characters once escaped (clipped first, an argument full of & grew past it,
Slack refused the chunk, and the draft, carrying it on every call, froze, was never stopped, and the reply was
posted beside it); a chunk Slack refused is not carried again; an edit that landed but answered 500 is made
again, not posted anew beside the draft."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.domain import ToolProgress
from bridge.slack.feedback import feedback_actions
from bridge.slack.live import Draft, LiveMessages
from bridge.slack.post import Author
from bridge.slack.tasks import task_chunk
from tests.fakes.slack import FakeSlack

ARGS = '{"url": "https://example.com/search?' + "a=1&" * 70 + '"}'  # 300 chars, 70 ampersands


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        yield slack


async def started(fake: FakeSlack, root: str, **options: Any) -> tuple[LiveMessages, Draft]:
    live = LiveMessages(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url), **options)
    first = "Look" if options.get("mode") == "update" else ""
    draft = await live.start("C1", root, first, "Look" if first else "Looking", Author("alice"),
                             (fake.team_id, "U0123ABCD"))
    assert draft is not None
    return live, draft


async def grown_and_replaced(live: LiveMessages, draft: Draft) -> bool:
    await asyncio.sleep(0.7)
    await live.grow(draft, "", "Looking it up now")
    assert draft.sent.endswith("it up now"), "the draft stopped growing"
    return await live.replace_with("C1", draft.ts, "Found it.", True, (), draft)


def test_task_details_stay_within_slacks_256_characters_after_escaping() -> None:
    chunk = task_chunk(ToolProgress("call_1", "fetch", ARGS, "running"), details=True)
    assert len(chunk["details"]) <= 256, len(chunk["details"])


def test_an_escaped_task_does_not_freeze_the_draft_or_duplicate_the_reply(fake: FakeSlack) -> None:
    async def run() -> bool:
        live, draft = await started(fake, fake.add_message("C1", "hi"))
        await live.task(draft, task_chunk(ToolProgress("call_1", "fetch", ARGS, "running"), details=True))
        return await grown_and_replaced(live, draft)

    assert asyncio.run(run()), "the reply could not replace its draft: it is posted beside it"


def test_a_task_chunk_slack_refuses_is_not_carried_by_every_later_call(fake: FakeSlack) -> None:
    async def run() -> bool:
        live, draft = await started(fake, fake.add_message("C1", "hi"))
        refused = task_chunk(ToolProgress("call_1", "fetch", "{}", "running"), details=True)
        refused["details"] = "x" * 300  # over Slack's 256: invalid_chunks
        await live.task(draft, refused)
        assert not draft.unsent, "the refused chunk is dropped"
        return await grown_and_replaced(live, draft)

    assert asyncio.run(run())


def test_a_replace_that_landed_but_answered_500_is_not_posted_again(fake: FakeSlack) -> None:
    """chat.update applied but answered 500: before, replace_with said False and the caller posted the reply anew."""
    root = fake.add_message("C1", "hi")

    async def run() -> bool:
        live, draft = await started(fake, root, mode="update")
        assert not draft.streaming
        fake.land_then_fail_next("chat.update", 500)
        return await live.replace_with("C1", draft.ts, "Found it.", False, (), draft)

    ok = asyncio.run(run())
    shown = [m["text"] for m in fake.messages("C1", root) if m.get("bot_id")]
    assert ok and shown == ["Found it."], shown


def test_a_draft_cut_inside_a_broadcast_word_grows_on(fake: FakeSlack) -> None:
    """A draft shown as `Ask @her`, then `Ask @here…`: the word, defused once whole (`@\u200bhere`), no longer
    continued what was streamed, and the draft froze at `Ask @her` until the reply replaced it."""
    root = fake.add_message("C1", "hi")

    async def run() -> Draft:
        live = LiveMessages(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
        draft = await live.start("C1", root, "", "Ask @her", Author("alice"), (fake.team_id, "U0123ABCD"))
        assert draft is not None
        for markdown in ("Ask @here", "Ask @here to look at the logs"):
            await asyncio.sleep(0.7)
            await live.grow(draft, "", markdown)
        return draft

    draft = asyncio.run(run())
    assert draft.sent == "Ask @\u200bhere to look at the logs", draft.sent
    assert [m["text"] for m in fake.messages("C1", root) if m.get("bot_id")] == [draft.sent]


def test_a_reply_after_many_tool_calls_still_replaces_its_draft(fake: FakeSlack) -> None:
    """60 tool calls: a task card each, with the reply's text and its feedback buttons, went past Slack's 50 blocks;
    chat.update was refused and the reply was posted anew beside the stopped draft."""
    root = fake.add_message("C1", "hi")
    actions = feedback_actions(7, "s1:0", "alice")

    async def run() -> bool:
        live, draft = await started(fake, root)
        for n in range(60):
            await live.task(draft, task_chunk(ToolProgress(f"call_{n}", "search", "{}", "done"), details=False))
        return await live.replace_with("C1", draft.ts, "Found it.", True, actions, draft)

    assert asyncio.run(run()), "the reply could not replace its draft: it is posted beside it"
    [message] = [m for m in fake.messages("C1", root) if m.get("bot_id")]
    assert len(message["blocks"]) <= 50 and message["blocks"][-1] == actions[0]
    assert message["text"] == "Found it." and "60" not in message["text"]
    assert "13 more" in str(message["blocks"][-3]), message["blocks"][-3]


@pytest.mark.parametrize("error", ["invalid_blocks", "msg_blocks_too_long"])
def test_a_reply_whose_blocks_slack_refuses_still_replaces_its_draft(fake: FakeSlack, error: str) -> None:
    """chat.update refused the reply's blocks (its task cards and buttons; many long tool calls pass the ~13,000
    characters of blocks Slack takes): the reply was posted anew beside its stopped draft, shown twice."""
    root = fake.add_message("C1", "hi")
    actions = feedback_actions(7, "s1:0", "alice")

    async def run() -> bool:
        live, draft = await started(fake, root)
        await live.task(draft, task_chunk(ToolProgress("call_1", "search", ARGS, "done"), details=True))
        fake.fail_next("chat.update", error=error)
        return await live.replace_with("C1", draft.ts, "Found it.", True, actions, draft)

    assert asyncio.run(run()), "the reply could not replace its draft: it is posted beside it"
    [message] = [m for m in fake.messages("C1", root) if m.get("bot_id")]
    assert message["text"] == "Found it."


@pytest.mark.parametrize("mode", ["auto", "update"])
def test_a_rate_limited_replace_waits_and_is_not_posted_beside_its_draft(fake: FakeSlack, mode: str) -> None:
    """chat.update answered 429 past the client's own waits (here a client that waits none): the reply was posted
    anew beside its draft, which showed most of it already."""
    root = fake.add_message("C1", "hi")

    async def run() -> bool:
        live, draft = await started(fake, root, mode=mode)
        fake.fail_next("chat.update", error="ratelimited", headers={"retry-after": "0"})
        return await live.replace_with("C1", draft.ts, "Found it.", draft.streaming, (), draft)

    assert asyncio.run(run()), "the reply could not replace its draft: it is posted beside it"
    assert [m["text"] for m in fake.messages("C1", root) if m.get("bot_id")] == ["Found it."]


@pytest.mark.parametrize("mode", ["auto", "update"])
def test_a_replace_rate_limited_past_every_wait_withdraws_its_draft(fake: FakeSlack, mode: str) -> None:
    """A rate limit that outlasts every wait: the reply is posted anew (False), so the draft, which shows most of its
    words, must not stay beside it."""
    root = fake.add_message("C1", "hi")

    async def run() -> tuple[bool, str]:
        live, draft = await started(fake, root, mode=mode)
        fake.fail_next("chat.update", error="ratelimited", headers={"retry-after": "0"}, times=7)
        return await live.replace_with("C1", draft.ts, "Found it.", draft.streaming, (), draft), draft.ts

    replaced, ts = asyncio.run(run())
    assert not replaced
    assert not [m for m in fake.messages("C1", root) if m["ts"] == ts], "the draft stays beside the reply"


def test_a_rate_limited_stop_of_the_stream_waits_and_the_reply_replaces_it(fake: FakeSlack) -> None:
    """chat.stopStream (Tier 2) answered 429: the stream stayed open, chat.update was refused for it
    (streaming_state_conflict), and the reply was posted beside a draft left streaming."""
    root = fake.add_message("C1", "hi")

    async def run() -> bool:
        live, draft = await started(fake, root)
        fake.fail_next("chat.stopStream", error="ratelimited", headers={"retry-after": "0"})
        return await live.replace_with("C1", draft.ts, "Found it.", True, (), draft)

    assert asyncio.run(run()), "the reply could not replace its draft: it is posted beside it"
    assert [m["text"] for m in fake.messages("C1", root) if m.get("bot_id")] == ["Found it."]
    assert not fake.open_streams()


@pytest.fixture
def quick_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bridge.slack.live.OUTCOME_WAITS", (0.01,) * 8, raising=False)


@pytest.mark.parametrize("land", [False, True])
def test_a_stop_of_the_stream_slack_answers_500_is_made_again_and_the_reply_replaces_it(
    fake: FakeSlack, quick_waits: None, land: bool
) -> None:
    """chat.stopStream answered 500 (landed or not): the failure was only logged, chat.update was refused for the
    message still streaming, and the reply was posted anew beside a draft that stayed open."""
    root = fake.add_message("C1", "hi")

    async def run() -> bool:
        live, draft = await started(fake, root)
        if land:
            fake.land_then_fail_next("chat.stopStream", 500)
        else:
            fake.fail_next("chat.stopStream", error="internal_error", status=500)
        return await live.replace_with("C1", draft.ts, "Found it.", True, (), draft)

    assert asyncio.run(run()), "the reply could not replace its draft: it is posted beside it"
    assert [m["text"] for m in fake.messages("C1", root) if m.get("bot_id")] == ["Found it."]
    assert not fake.open_streams()


def test_an_edit_that_landed_but_answered_500_three_times_is_not_posted_again(
    fake: FakeSlack, quick_waits: None
) -> None:
    """Three unknown outcomes of the replacing edit: replace_with gave up and the reply was posted anew, twice."""
    root = fake.add_message("C1", "hi")

    async def run() -> bool:
        live, draft = await started(fake, root, mode="update")
        fake.land_then_fail_next("chat.update", 500, times=3)
        return await live.replace_with("C1", draft.ts, "Found it.", False, (), draft)

    assert asyncio.run(run())
    assert [m["text"] for m in fake.messages("C1", root) if m.get("bot_id")] == ["Found it."]


@pytest.mark.parametrize(
    ("error", "status", "streams_later"),
    [("internal_error", 500, True), ("not_in_channel", 200, True), ("channel_type_not_supported", 200, True),
     ("missing_scope", 200, False)],
)
def test_only_a_refusal_that_says_the_app_cannot_stream_turns_streams_off(
    fake: FakeSlack, error: str, status: int, streams_later: bool
) -> None:
    """One chat.startStream failure of any kind (a 5xx, a refusal of one channel) switched the whole process to
    chat.update drafts until a restart: no tool calls as tasks, and edits on Slack's scarcer Tier 3."""
    fake.add_channel("C2", "other")
    root, other = fake.add_message("C1", "hi"), fake.add_message("C2", "hi")

    async def run() -> None:
        live = LiveMessages(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
        fake.fail_next("chat.startStream", error=error, status=status)
        await live.start("C1", root, "Look", "Look", Author("alice"), (fake.team_id, "U0123ABCD"))
        later = await live.start("C2", other, "Look", "Look", Author("alice"), (fake.team_id, "U0123ABCD"))
        assert later is not None and later.streaming is streams_later

    asyncio.run(run())


@pytest.mark.parametrize("streaming", [True, None])
def test_a_streamed_draft_shows_the_reply_once_replaced(fake: FakeSlack, streaming: bool | None) -> None:
    """A stream's words are the message's blocks, and chat.update without `blocks` keeps a message's blocks (Slack:
    "If you don't include this field, the message's previous blocks will be retained"): a reply with no tool calls
    and no buttons changed only the notification text, and the thread went on showing the draft."""
    root = fake.add_message("C1", "hi")

    async def run() -> str:
        live, draft = await started(fake, root)
        assert await live.replace_with("C1", draft.ts, "Found *it*.", streaming, (), draft)
        return draft.ts

    ts = asyncio.run(run())
    assert fake.shown("C1", ts) == "Found *it*."
