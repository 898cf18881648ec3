"""The lease keeper stops a worker before its lease can expire whenever it cannot prove it still holds it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

import bridge.store.leases as leases_module
from bridge.clients import SharedAgentLocks
from bridge.logs import Throttled
from bridge.slack.live import LiveMessages
from bridge.slack.post import Author, SlackPoster
from bridge.store.leases import BindingLeases
from tests.fakes.slack import FakeSlack

LEASE = 1.0


class FakeStore:
    def __init__(self, renew: str = "ok", claim: bool = True) -> None:
        self.renew_mode = renew
        self.claim = claim
        self.renewals = 0
        self.released = False

    async def claim_binding(self, *_: Any) -> bool:
        return self.claim

    async def renew_binding(self, *_: Any) -> bool:
        self.renewals += 1
        if self.renew_mode == "hang":
            await asyncio.Event().wait()
        if self.renew_mode == "raise":
            raise OSError("database unreachable")
        return self.renew_mode == "ok"

    async def release_binding(self, *_: Any) -> None:
        self.released = True


async def hold_for(store: FakeStore, seconds: float) -> tuple[str, float]:
    """('held' | 'cancelled' | 'refused', when)."""
    leases = BindingLeases(store, LEASE, owner="web.1")  # type: ignore[arg-type]
    started = time.monotonic()

    async def work() -> str:
        async with leases.hold("T1", "C1") as held:
            if not held:
                return "refused"
            await asyncio.sleep(seconds)
        return "held"

    try:
        outcome = await asyncio.create_task(work())
    except asyncio.CancelledError:
        outcome = "cancelled"
    return outcome, time.monotonic() - started


async def under_lease(
    step: Callable[[], Awaitable[object]], store: FakeStore | None = None, frozen: bool = False, done: str = "done"
) -> str:
    """`step` run by a worker holding a binding's lease of `store`, frozen past the lease first when `frozen`:
    'cancelled' when the lease keeper stopped the worker, else `done`."""
    leases = BindingLeases(store or FakeStore(), LEASE, owner="web.1")  # type: ignore[arg-type]

    async def work() -> None:
        async with leases.hold("T1", "C1"):
            if frozen:
                time.sleep(1.2 * LEASE)  # frozen: nothing of this process runs, its keeper neither
            await step()

    try:
        await asyncio.create_task(work())
    except asyncio.CancelledError:
        return "cancelled"
    return done


@pytest.mark.parametrize("mode", ["hang", "raise"])
def test_a_worker_that_cannot_renew_is_stopped_before_its_lease_expires(mode: str) -> None:
    store = FakeStore(renew=mode)
    outcome, when = asyncio.run(hold_for(store, 5))
    assert outcome == "cancelled" and when < 0.9 * LEASE, when
    assert store.released


def test_a_lease_taken_over_stops_the_worker_at_the_next_renewal() -> None:
    outcome, when = asyncio.run(hold_for(FakeStore(renew="lost"), 5))
    assert outcome == "cancelled" and when < 0.5 * LEASE


def test_a_renewed_lease_keeps_its_worker_and_a_held_one_is_refused() -> None:
    store = FakeStore()
    assert asyncio.run(hold_for(store, 1.5 * LEASE))[0] == "held"
    assert store.renewals >= 3 and store.released
    refused = FakeStore(claim=False)
    assert asyncio.run(hold_for(refused, 1))[0] == "refused" and not refused.released


def test_a_worker_stalled_past_its_lease_posts_nothing_when_it_runs_again() -> None:
    """A process frozen (a host pause, a blocked event loop) past its lease was taken over by another; when it ran
    again, its worker's next step came before its lease keeper had run at all, and posted to the thread again
    what the other process had already posted (seen end to end in tests/e2e/test_lease_stall.py)."""
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        root = slack.add_message("C1", "hi")
        poster = SlackPoster(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
        [part] = poster.parts("alice", "the next part")

        outcome = asyncio.run(under_lease(lambda: poster.post("C1", root, part), frozen=True, done="posted"))
        assert outcome == "cancelled"
        assert [m for m in slack.messages("C1", root) if m.get("bot_id")] == []


def test_a_worker_stalled_past_its_lease_asks_no_agent_when_it_runs_again() -> None:
    """The same stall just before a Letta send: the agent lock granted, the send is not made."""
    sent: list[str] = []

    async def send() -> None:
        async with SharedAgentLocks(FakeLockStore()).hold(["agent-1"]):  # type: ignore[arg-type]
            sent.append("agent-1")

    assert asyncio.run(under_lease(send, frozen=True, done="sent")) == "cancelled"
    assert sent == []


def test_a_worker_stalled_past_its_lease_grows_and_opens_no_draft_when_it_runs_again() -> None:
    """The same stall while a reply grows as a draft. Before, the thawed worker's next token edited the draft that
    the process taking over had already finished (the thread showed the reply cut to what the stalled one had),
    or opened a second draft of a reply the other process was writing, left half-written in the thread."""
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        root = slack.add_message("C1", "hi")
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        live = LiveMessages(client, mode="update")
        alice = Author("alice")

        async def stalled() -> list[str]:
            draft = await live.start("C1", root, "alice is wri", "alice is wri", alice, ("T1", "U1"))
            assert draft is not None
            await client.chat_update(channel="C1", ts=draft.ts, text="alice's whole reply")  # the other process's
            steps: list[Callable[[], Awaitable[object]]] = [
                lambda: live.grow(draft, "alice is writing", "alice is writing"),
                lambda: live.start("C1", root, "bob is wri", "bob is wri", Author("bob"), ("T1", "U1")),
            ]
            return [await under_lease(step, frozen=True) for step in steps]

        assert asyncio.run(stalled()) == ["cancelled", "cancelled"]
        assert [m["text"] for m in slack.messages("C1", root) if m.get("bot_id")] == ["alice's whole reply"]


def test_a_step_outside_any_lease_or_after_its_release_is_not_stopped() -> None:
    async def steps() -> list[str]:
        done: list[str] = []
        locks = SharedAgentLocks(FakeLockStore())  # type: ignore[arg-type]
        async with locks.hold(["agent-1"]):
            done.append("no lease")
        leases = BindingLeases(FakeStore(), LEASE, owner="web.1")  # type: ignore[arg-type]
        async with leases.hold("T1", "C1"):
            async with locks.hold(["agent-1"]):
                done.append("held")
        time.sleep(1.2 * LEASE)
        async with locks.hold(["agent-1"]):
            done.append("released")
        return done

    assert asyncio.run(steps()) == ["no lease", "held", "released"]


class FakeLockStore:
    """The store's agent lock, free at once (an advisory lock nobody else holds)."""

    @asynccontextmanager
    async def agent_lock(self, _ids: Any) -> AsyncIterator[set[str]]:
        yield set()


def test_renewals_failing_in_an_outage_are_one_warning_not_one_a_second_per_binding(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database outage made every held binding warn about each failed renewal, retried every second until the
    lease was given up (a dozen lines per binding at the default lease). Each binding still says once that it
    stopped its turns; the failed renewals are said once for all of them."""
    monkeypatch.setattr(leases_module, "unrenewed", Throttled(leases_module.log))  # no window left by another test
    store = FakeStore(renew="raise")
    leases = BindingLeases(store, LEASE, owner="web.1")  # type: ignore[arg-type]

    async def hold(channel: str) -> None:
        async with leases.hold("T1", channel):
            await asyncio.sleep(5)

    async def main() -> None:
        held = [asyncio.create_task(hold(f"C{n}")) for n in range(3)]
        await asyncio.gather(*held, return_exceptions=True)

    with caplog.at_level(logging.WARNING, logger="bridge.store.leases"):
        asyncio.run(main())
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if m.startswith("lease lost")]) == 3, said
    assert len([m for m in said if m.startswith("could not renew")]) == 1, said
