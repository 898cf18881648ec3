"""Name lookups under a burst: one call per name however many turns ask at once, never a wait for Slack's
rate limit (users.info is Tier 4, conversations.info Tier 3, in Slack's published limits), and no
further calls to a rate-limited method until its Retry-After has passed."""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import Callable, Coroutine
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bridge.slack.directory import NAME_KEPT_SECONDS, NAME_PAUSE_SECONDS, Directory, Earlier
from tests.fakes.slack import FakeSlack


class Answers:
    """A Slack client double for the two name methods: each call is recorded, then answered in turn from
    `script` (a name, or a 429 with its Retry-After), once `gate` is open."""

    def __init__(self, *script: str | tuple[int, str | None]) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def _answer(self, method: str, key: str, shape: str) -> AsyncSlackResponse:
        self.calls.append((method, key))
        await self.gate.wait()
        step = self.script.pop(0)
        if isinstance(step, tuple):
            status, retry_after = step
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            body = {"ok": False, "error": "ratelimited"}
            response = AsyncSlackResponse(
                client=self, http_verb="POST", api_url=method, req_args={}, data=body, headers=headers,
                status_code=status,
            )
            raise SlackApiError("ratelimited", response)
        data: dict[str, Any] = {"ok": True, shape: {"name": step, "profile": {"display_name": step}}}
        return AsyncSlackResponse(
            client=self, http_verb="POST", api_url=method, req_args={}, data=data, headers={}, status_code=200
        )

    async def users_info(self, user: str) -> AsyncSlackResponse:
        return await self._answer("users.info", user, "user")

    async def conversations_info(self, channel: str) -> AsyncSlackResponse:
        return await self._answer("conversations.info", channel, "channel")


class Unused:
    """The client that waits out rate limits: a name lookup must never go through it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a name was looked up through the waiting client ({name})")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """The test, run on an event loop of its own."""
    return functools.wraps(test)(lambda: asyncio.run(test()))


def directory(reads: Answers, clock: Clock | None = None) -> Directory:
    return Directory(Unused(), reads, clock or Clock())  # type: ignore[arg-type]  # doubles of AsyncWebClient


@run
async def test_a_burst_of_turns_asking_one_name_makes_one_call() -> None:
    reads = Answers("alerts-bot")
    names = directory(reads)
    reads.gate.clear()
    asked = [asyncio.ensure_future(names.user_name("U0ALERTS1")) for _ in range(50)]
    await asyncio.sleep(0)
    reads.gate.set()
    assert await asyncio.gather(*asked) == ["alerts-bot"] * 50
    assert await names.user_name("U0ALERTS1") == "alerts-bot"
    assert reads.calls == [("users.info", "U0ALERTS1")]


@run
async def test_one_caller_cancelled_leaves_the_lookup_to_the_others() -> None:
    reads = Answers("general")
    names = directory(reads)
    reads.gate.clear()
    first = asyncio.ensure_future(names.channel_name("C0GENERAL"))
    second = asyncio.ensure_future(names.channel_name("C0GENERAL"))
    await asyncio.sleep(0)
    first.cancel()
    reads.gate.set()
    assert await second == "general"
    assert reads.calls == [("conversations.info", "C0GENERAL")]


@run
async def test_a_rate_limited_method_is_not_asked_again_until_its_retry_after_has_passed() -> None:
    clock = Clock()
    reads = Answers((429, "20"), "alice", "general")
    names = directory(reads, clock)
    assert await names.channel_name("C0GENERAL") == "C0GENERAL", "the id stands in, at once"
    assert await names.channel_name("C0RANDOM1") == "C0RANDOM1"
    assert await names.user_name("U0ALICE01") == "alice", "users.info is limited on its own"
    assert reads.calls == [("conversations.info", "C0GENERAL"), ("users.info", "U0ALICE01")]
    clock.now += 19
    assert await names.channel_name("C0GENERAL") == "C0GENERAL"
    clock.now += 2
    assert await names.channel_name("C0GENERAL") == "general", "asked again once Retry-After has passed"
    assert len(reads.calls) == 3


@run
async def test_a_rate_limit_without_retry_after_pauses_for_slacks_usual_wait() -> None:
    clock = Clock()
    reads = Answers((429, None), "general")
    names = directory(reads, clock)
    assert await names.channel_name("C0GENERAL") == "C0GENERAL"
    clock.now += NAME_PAUSE_SECONDS - 1
    assert await names.channel_name("C0GENERAL") == "C0GENERAL"
    clock.now += 2
    assert await names.channel_name("C0GENERAL") == "general"
    assert len(reads.calls) == 2


@run
async def test_a_renamed_channel_or_person_is_called_by_the_new_name_within_minutes() -> None:
    """A name was kept for the life of the process: after a channel was renamed (or a person changed their
    display name), the agents were told `#old-name` until the bridge restarted. A name is asked again once it is
    NAME_KEPT_SECONDS old; a burst meanwhile still costs no call."""
    clock = Clock()
    reads = Answers("planning", "alice", "roadmap", "ally", (429, "20"))
    names = directory(reads, clock)
    assert (await names.channel_name("C0PLAN001"), await names.user_name("U0ALICE01")) == ("planning", "alice")
    clock.now += NAME_KEPT_SECONDS - 1
    assert (await names.channel_name("C0PLAN001"), await names.user_name("U0ALICE01")) == ("planning", "alice")
    assert len(reads.calls) == 2
    clock.now += 2
    assert (await names.channel_name("C0PLAN001"), await names.user_name("U0ALICE01")) == ("roadmap", "ally")
    assert len(reads.calls) == 4
    clock.now += NAME_KEPT_SECONDS
    assert await names.channel_name("C0PLAN001") == "roadmap", "Slack's trouble asking again: the last name stands"
    assert await names.channel_name("C0PLAN001") == "roadmap" and len(reads.calls) == 5


def test_a_thread_read_for_context_names_another_organisations_person_by_their_embedded_profile() -> None:
    """Earlier messages of a Slack Connect thread: users.info refuses the external person, whose profile Slack
    embeds in their message; the agents were told the user id."""
    with FakeSlack() as slack:
        root = slack.add_message("C0CONNECT1", "our contract draft", user="U0EXTPERS",
                                 user_profile={"display_name": "pat", "real_name": "Pat External", "team": "T0EXTERNL"})
        later = slack.add_message("C0CONNECT1", "a question", thread_ts=root)
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        earlier = asyncio.run(Directory(client).thread_before("C0CONNECT1", root, later))
    assert [(e.user_id, e.name) for e in earlier] == [("U0EXTPERS", "pat")]


@run
async def test_a_channel_name_asked_for_ahead_is_the_one_lookup_the_turn_then_waits_for() -> None:
    """A turn asks for its channel's name as it is taken (`channel_name_soon`), so that Slack's round trip runs
    while the turn reads the store; when its input is put together it waits for that lookup, not a second one."""
    reads = Answers("incidents")
    names = directory(reads)
    reads.gate.clear()
    names.channel_name_soon("C0INCIDNT")
    await asyncio.sleep(0)
    assert reads.calls == [("conversations.info", "C0INCIDNT")], "asked before anyone waits for it"
    waiting = asyncio.ensure_future(names.channel_name("C0INCIDNT"))
    await asyncio.sleep(0)
    reads.gate.set()
    assert await waiting == "incidents"
    names.channel_name_soon("C0INCIDNT")
    await asyncio.sleep(0)
    assert reads.calls == [("conversations.info", "C0INCIDNT")], "a name known is not asked for again"


@run
async def test_no_channel_name_is_asked_for_ahead_while_slack_asks_the_bridge_to_wait() -> None:
    clock = Clock()
    reads = Answers((429, "20"), "general")
    names = directory(reads, clock)
    assert await names.channel_name("C0GENERAL") == "C0GENERAL"
    names.channel_name_soon("C0RANDOM1")
    await asyncio.sleep(0)
    assert reads.calls == [("conversations.info", "C0GENERAL")]


class Broken(Answers):
    async def conversations_info(self, channel: str) -> AsyncSlackResponse:
        self.calls.append(("conversations.info", channel))
        raise ConnectionResetError("Slack's connection dropped")


def test_a_lookup_asked_for_ahead_that_fails_with_nobody_waiting_leaves_no_unretrieved_error() -> None:
    """A turn that ends before it needs the name (its channel refused, the bridge stopping) leaves the lookup with
    nobody waiting; its failure must not be logged by asyncio as an exception never retrieved."""
    unretrieved: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: unretrieved.append(context))
        reads = Broken()
        names = directory(reads)
        names.channel_name_soon("C0GONE001")
        for _ in range(3):
            await asyncio.sleep(0)
        assert reads.calls == [("conversations.info", "C0GONE001")]
        gc.collect()

    asyncio.run(main())
    gc.collect()
    assert unretrieved == []


def test_a_thread_read_for_context_keeps_other_apps_posts_and_asks_who_this_app_is_once() -> None:
    """An app's post with attachments only is read by their fallback; this app's own post that is no agent's
    reply (a notice) stays out; auth.test is asked once, and only for a thread with bots' posts in it."""
    with FakeSlack() as slack:
        root = slack.add_message("C0ALERTS1", "")
        alert = slack._find("C0ALERTS1", root)
        assert alert is not None
        alert.pop("user"), alert.pop("client_msg_id", None)
        alert.update(subtype="bot_message", bot_id="B0PAGERDUTY", username="PagerDuty",
                     attachments=[{"fallback": "disk full"}])
        ours = slack.add_message("C0ALERTS1", "Queued: wait", thread_ts=root)
        mine = slack._find("C0ALERTS1", ours)
        assert mine is not None
        mine.pop("user"), mine.update(subtype="bot_message", bot_id=slack.bot_id)
        later = slack.add_message("C0ALERTS1", "why?", thread_ts=root)
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        names = Directory(client)

        async def twice() -> list[Any]:
            return [await names.thread_before("C0ALERTS1", root, later) for _ in range(2)]

        first, second = asyncio.run(twice())
        assert first == second and [(e.user_id, e.name, e.text) for e in first] == [
            ("B0PAGERDUTY", "PagerDuty (app)", "disk full")
        ]
        assert len(slack.calls_to("auth.test")) == 1
        quiet = slack.add_message("C0QUIET01", "a person's root")
        asked = slack.add_message("C0QUIET01", "a question", thread_ts=quiet)
        assert [e.text for e in asyncio.run(Directory(client).thread_before("C0QUIET01", quiet, asked))] == [
            "a person's root"
        ]
        assert len(slack.calls_to("auth.test")) == 1, "no bot's post there: nobody asked who this app is"


def test_a_long_threads_first_message_stays_in_its_context_read_or_asked_for_once() -> None:
    """A thread started by an alert, then 80 replies: the 50 read before a mention kept the newest, so the agents
    never saw what the thread was about. Within the hour the root is among the messages read and is kept; a day
    old, the window reaching back from the mention never reaches it and it is asked for, once a thread."""
    with FakeSlack() as slack:
        recent = slack.add_message("C0LONG001", "ALERT: checkout 5xx at 42%")
        for n in range(80):
            slack.add_message("C0LONG001", f"reply {n}", thread_ts=recent)
        asked = slack.add_message("C0LONG001", "what started this?", thread_ts=recent)
        now = int(float(asked))
        old = slack.add_message("C0LONG002", "ALERT: disk full on db-1", ts=f"{now - 86400}.000001")
        for n in range(60):
            slack.add_message("C0LONG002", f"later {n}", thread_ts=old, ts=f"{now - 600 + n}.000001")
        later = slack.add_message("C0LONG002", "is it fixed?", thread_ts=old)
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        names = Directory(client)

        async def read() -> tuple[list[Earlier], list[Earlier], list[Earlier]]:
            return (
                await names.thread_before("C0LONG001", recent, asked),
                await names.thread_before("C0LONG002", old, later),
                await names.thread_before("C0LONG002", old, later),
            )

        within, day_old, again = asyncio.run(read())
        assert len(within) == 50 and within[0].text == "ALERT: checkout 5xx at 42%"
        assert [e.text for e in within[1:3]] == ["reply 31", "reply 32"] and within[-1].text == "reply 79"
        assert len(day_old) == 50 and day_old[0].text == "ALERT: disk full on db-1"
        assert day_old[-1].text == "later 59" and again == day_old
        first_page_reads = [c for c in slack.calls_to("conversations.replies") if c.args.get("limit") in (1, "1")]
        assert len(first_page_reads) == 1, "the root is asked for once a thread"
