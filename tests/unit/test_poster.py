"""The poster's own rewrites of a part (bridge/slack/post.py) against the fake Slack."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace

import pytest
from pydantic import SecretStr
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bridge.clients import slack_client
from bridge.slack.failures import SlackPostError
from bridge.slack.feedback import feedback_actions
from bridge.slack.post import SlackPoster
from tests.fakes.slack import FakeSlack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        yield slack


@pytest.mark.parametrize("reply", ["> quoted first\n\nthen mine", "```\nmake all\n```"])
def test_a_reply_refused_its_custom_name_keeps_a_leading_quote_or_code_block(fake: FakeSlack, reply: str) -> None:
    """Slack refused the custom username (no chat:write.customize): the name was put before the text on the same
    line, and a reply that opens with a quote showed a literal `>` (a quote must start its line)."""
    root = fake.add_message("C1", "hi")
    poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
    [part] = poster.parts("bob", reply)
    fake.fail_next("chat.postMessage", error="missing_scope")
    asyncio.run(poster.post("C1", root, part))
    [posted] = [m["text"] for m in fake.messages("C1", root) if m.get("bot_id")]
    assert posted == poster.parts("bob", reply)[0].text  # what a reply is from then on: the same text
    assert posted.startswith("*bob*: \n"), posted


def test_a_status_line_slack_failed_for_a_while_is_still_taken_back(fake: FakeSlack) -> None:
    """One setStatus that Slack rate-limited (another thread's) turned the status line off for good: the thread
    already showing "alice is thinking..." was never cleared, and no later turn showed one until a restart."""
    alice, bob, later = fake.add_message("C1", "one"), fake.add_message("C1", "two"), fake.add_message("C1", "three")
    poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))

    async def main() -> None:
        await poster.status("C1", alice, "alice is thinking...")
        fake.fail_next("assistant.threads.setStatus", error="ratelimited")
        await poster.status("C1", bob, "bob is thinking...")
        await poster.status("C1", alice, "")  # alice's turn is over: its line is taken back
        await poster.status("C1", later, "carol is thinking...")

    asyncio.run(main())
    sent = [(c.args["thread_ts"], c.args["status"]) for c in fake.calls_to("assistant.threads.setStatus")]
    assert sent[-2:] == [(alice, ""), (later, "carol is thinking...")], sent


def test_a_status_line_slack_refuses_is_not_asked_for_again(fake: FakeSlack) -> None:
    """A refusal (the token lacks the scope) is for good: no turn asks again."""
    root = fake.add_message("C1", "one")
    poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
    fake.fail_next("assistant.threads.setStatus", error="missing_scope")

    async def main() -> None:
        await poster.status("C1", root, "alice is thinking...")
        await poster.status("C1", root, "")

    asyncio.run(main())
    assert len(fake.calls_to("assistant.threads.setStatus")) == 1


def _bot_texts(fake: FakeSlack, root: str) -> list[str]:
    return [m["text"] for m in fake.messages("C1", root) if m.get("bot_id")]


@pytest.mark.parametrize(
    ("error", "status", "times"),
    [("rate_limited", 200, 1), ("ratelimited", 429, 4)],  # 4: past the client's own three waits
)
def test_a_rate_limited_post_waits_and_lands_once(fake: FakeSlack, error: str, status: int, times: int) -> None:
    """chat.postMessage documents `rate_limited` ("posted too many messages", HTTP 200) besides HTTP 429: either
    one, once the client's own retries were spent, failed the turn, and the reply and every one after it were lost."""
    root = fake.add_message("C1", "hi")
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))  # as clients.py builds it
    poster = SlackPoster(client)
    [part] = poster.parts("bob", "the answer")
    fake.fail_next("chat.postMessage", error=error, status=status, headers={"retry-after": "0"}, times=times)
    asyncio.run(poster.post("C1", root, part))
    assert _bot_texts(fake, root) == ["the answer"]


def test_a_reply_whose_buttons_slack_refuses_still_arrives_whole(fake: FakeSlack) -> None:
    """Slack refused the feedback buttons' blocks (invalid_blocks): the turn failed and the reply was never shown."""
    root = fake.add_message("C1", "hi")
    poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
    [part] = poster.parts("bob", "the answer")
    part = replace(part, actions=feedback_actions(7, "s1:0", "bob"))
    fake.fail_next("chat.postMessage", error="invalid_blocks")
    asyncio.run(poster.post("C1", root, part))
    assert _bot_texts(fake, root) == ["the answer"]
    assert len(fake.calls_to("chat.postMessage")) == 2


@pytest.mark.parametrize("error", ["invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long"])
def test_reasoning_slack_refuses_as_blocks_is_posted_as_lines(fake: FakeSlack, error: str) -> None:
    """The reasoning and tool calls under a reply, refused as context blocks, failed the whole turn."""
    root = fake.add_message("C1", "hi")
    poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
    [part] = poster.note_parts("bob", [["reasoning", "look it up"], ["tool", "search(q)"]])
    fake.fail_next("chat.postMessage", error=error)
    asyncio.run(poster.post("C1", root, part))
    [shown] = _bot_texts(fake, root)
    assert "look it up" in shown and "search(q)" in shown, shown


def test_a_post_that_fell_back_to_text_is_found_after_a_crash(fake: FakeSlack) -> None:
    """A resumed turn looks for its part in the thread before posting it: one posted as plain text (its blocks
    refused) is found too, not posted a second time."""
    root = fake.add_message("C1", "hi")
    poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
    [part] = poster.note_parts("bob", [["reasoning", "look it up"]])
    fake.fail_next("chat.postMessage", error="invalid_blocks")
    asyncio.run(poster.post("C1", root, part))
    fake.fail_next("chat.postMessage", error="invalid_blocks")
    asyncio.run(poster.post("C1", root, part, check_first=True))
    assert len(_bot_texts(fake, root)) == 1


def test_a_post_whose_answer_was_lost_is_not_made_twice(fake: FakeSlack) -> None:
    """The connection dropped after Slack had posted (a proxy, a load balancer): slack_sdk's default handler made
    the post again at once, unseen by the poster's check of the thread, and the reply showed twice."""
    root = fake.add_message("C1", "hi")
    settings = SimpleNamespace(slack_bot_token=SecretStr(fake.bot_token), slack_api_url=fake.api_url)
    poster = SlackPoster(slack_client(settings))  # type: ignore[arg-type]  # the client serve builds
    [part] = poster.parts("bob", "the answer")
    fake.land_then_drop_next("chat.postMessage")
    asyncio.run(poster.post("C1", root, part))
    assert _bot_texts(fake, root) == ["the answer"]


def test_a_channel_refused_for_good_is_checked_before_a_waiting_turn_runs(fake: FakeSlack) -> None:
    """Archived, the bot removed, deleted: a refused post marks the channel, and a waiting turn asks Slack
    whether it still is (one conversations.info) instead of asking the agents for answers nobody could see; a
    channel that takes posts again (unarchived, the bot invited back) is forgotten; Slack's own trouble runs the
    turn. A channel never refused costs no call."""
    root = fake.add_message("C1", "hi")
    poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
    [part] = poster.parts(None, "hello")

    async def refused() -> str | None:
        with pytest.raises(SlackPostError):
            await poster.post("C1", root, part)
        return await poster.still_refused("C1")

    async def main() -> list[str | None]:
        seen = [await poster.still_refused("C1")]
        fake.archive_channel("C1")
        seen.append(await refused())
        fake.fail_next("conversations.info", error="ratelimited")
        seen.append(await poster.still_refused("C1"))
        fake.archive_channel("C1", False)
        seen.append(await poster.still_refused("C1"))
        fake.remove_bot("C1")
        seen.append(await refused())
        fake.remove_bot("C1", False)
        await poster.post("C1", root, part)  # a post landed: the refusal is forgotten without asking
        seen.append(await poster.still_refused("C1"))
        fake.delete_channel("C1")
        seen.append(await refused())
        return seen

    assert asyncio.run(main()) == [None, "is_archived", None, None, "not_in_channel", None, "channel_not_found"]
    assert len(fake.calls_to("conversations.info")) == 5


@pytest.mark.parametrize(("error", "times"), [("rate_limited", 1), ("ratelimited", 4)])
def test_a_post_slack_held_back_is_counted_rate_limited_not_failed(fake: FakeSlack, error: str, times: int) -> None:
    """`rate_limited` (HTTP 200, "posted too many messages") and a 429 past the client's own three waits are
    waited out by the poster, and the post lands. Each refusal was counted in bridge_slack_errors_total, which
    operators alert on, and not in bridge_slack_rate_limited_total: the metrics said the posts failed, and that
    Slack never held the bridge back."""
    from bridge.metrics import Metrics

    root = fake.add_message("C1", "hi")
    settings = SimpleNamespace(slack_bot_token=SecretStr(fake.bot_token), slack_api_url=fake.api_url)
    metrics = Metrics()
    poster = SlackPoster(slack_client(settings, metrics))  # type: ignore[arg-type]  # the client serve builds
    [part] = poster.parts("bob", "the answer")
    fake.fail_next("chat.postMessage", error=error, headers={"retry-after": "0"}, times=times)
    asyncio.run(poster.post("C1", root, part))
    assert _bot_texts(fake, root) == ["the answer"]
    sample = metrics.registry.get_sample_value
    assert sample("bridge_slack_errors_total", {"method": "chat.postMessage", "error": error}) is None
    assert sample("bridge_slack_rate_limited_total", {"method": "chat.postMessage"}) == times


@pytest.fixture
def quick_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bridge.slack.post.OUTCOME_WAITS", (0.01,) * 8, raising=False)


def test_a_post_slack_answers_500_for_a_while_lands_once_it_recovers(fake: FakeSlack, quick_waits: None) -> None:
    """Three 5xx in a row (about three seconds of a Slack incident) failed the post, and with it the turn: the
    reply was lost for good and the agents after it were never asked."""
    root = fake.add_message("C1", "hi")
    poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
    [part] = poster.parts("bob", "the answer")
    fake.fail_next("chat.postMessage", error="internal_error", status=500, times=5)
    asyncio.run(poster.post("C1", root, part))
    assert _bot_texts(fake, root) == ["the answer"]


def test_a_post_that_landed_is_not_posted_again_while_the_thread_cannot_be_read(
    fake: FakeSlack, quick_waits: None
) -> None:
    """The post landed but answered 500, and reading the thread back failed too: the poster took that as "not
    there" and posted the reply a second time."""
    root = fake.add_message("C1", "hi")
    poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
    [part] = poster.parts("bob", "the answer")
    fake.land_then_fail_next("chat.postMessage", 500)
    fake.fail_next("conversations.replies", error="internal_error", status=500, times=2)
    asyncio.run(poster.post("C1", root, part))
    assert _bot_texts(fake, root) == ["the answer"]


def test_a_post_slack_keeps_failing_fails_once_the_waits_are_spent(fake: FakeSlack, quick_waits: None) -> None:
    root = fake.add_message("C1", "hi")
    poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
    [part] = poster.parts("bob", "the answer")
    fake.fail_next("chat.postMessage", error="internal_error", status=500, times=20)
    with pytest.raises(SlackPostError, match="http_500"):
        asyncio.run(poster.post("C1", root, part))
    assert len(fake.calls_to("chat.postMessage")) == 9  # the first try and one after each of the eight waits
    assert _bot_texts(fake, root) == []
