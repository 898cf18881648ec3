"""bridge/arrivals.py: each recorded event goes to Bolt once when it succeeds, a channel's events in the order they
were recorded, is tried again after a failure (counting the attempts of earlier runs) for as long as it fails, as
soon as the store answers again where it did not, and is left in the inbox when stopping cuts it off."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bridge import arrivals
from bridge.arrivals import MAX_ATTEMPTS, Arrivals
from bridge.inbox import Arrival

BODY = json.dumps({"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_mention"}}).encode()
HEADERS = {"content-type": "application/json", "x-slack-request-timestamp": "1", "x-slack-signature": "v0=x"}


class Bolt:
    def __init__(self, statuses: list[int | Exception]) -> None:
        self.statuses = statuses
        self.requests: list[AsyncBoltRequest] = []

    async def dispatch(self, request: AsyncBoltRequest) -> BoltResponse:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        if isinstance(status, Exception):
            raise status
        return BoltResponse(status=status, body="")


def run(bolt: Bolt, arrival: Arrival, stop_after: float | None = None) -> tuple[list[int], list[int]]:
    handled: list[int] = []
    failed: list[int] = []

    async def main() -> None:
        queue = Arrivals(bolt.dispatch, lambda a: handled.append(a.id), lambda a: failed.append(a.id))
        queue.arrive(arrival)
        if stop_after is None:
            while len(queue):
                await asyncio.sleep(0.001)
        else:
            await asyncio.sleep(stop_after)
            await queue.stop(0)

    asyncio.run(main())
    return handled, failed


@pytest.fixture(autouse=True)
def quick_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrivals, "PAUSES", (0.001, 0.001, 0.001))


def test_a_handled_event_goes_to_bolt_once_with_its_body_and_headers() -> None:
    bolt = Bolt([200])
    assert run(bolt, Arrival(7, HEADERS, BODY)) == ([7], [])
    [request] = bolt.requests
    assert request.body["event_id"] == "Ev1" and request.headers["x-slack-signature"] == ["v0=x"]
    assert request.mode == "socket_mode"  # Bolt does not check the (already checked, maybe old) signature again


def test_a_failed_attempt_is_made_again_then_handled() -> None:
    bolt = Bolt([500, RuntimeError("store down"), 200])
    assert run(bolt, Arrival(3, HEADERS, BODY)) == ([3], [3, 3])
    assert len(bolt.requests) == 3


def test_an_event_failing_past_slacks_retries_is_kept_and_tried_again_not_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Slack got its 200 and will not deliver the event again: dropping it after Slack's own retry schedule (about
    six minutes of a full disk, or a database down) lost an acknowledged mention without a word."""
    bolt = Bolt([500] * 6)
    assert run(bolt, Arrival(4, HEADERS, BODY, attempts=MAX_ATTEMPTS - 2)) == ([4], [4] * 6)
    assert len(bolt.requests) == 7
    assert "kept in the inbox" in caplog.text and "event_id=Ev1" in caplog.text
    spent = Bolt([200])  # one an earlier run tried MAX_ATTEMPTS times already
    assert run(spent, Arrival(5, HEADERS, BODY, attempts=MAX_ATTEMPTS)) == ([5], [])
    assert len(spent.requests) == 1


def event(n: int, channel: str) -> bytes:
    body = {"type": "event_callback", "team_id": "T1", "event_id": f"Ev{n}", "event": {"type": "message",
                                                                                    "channel": channel}}
    return json.dumps(body).encode()


def test_the_events_of_one_channel_go_to_bolt_in_the_order_they_were_recorded() -> None:
    """A follow-up's listener reads the store before it records its turn, a mention's does not: side by side, a
    mention recorded after a follow-up became the earlier turn. Another channel's events do not wait."""
    ended: list[str] = []

    async def dispatch(request: AsyncBoltRequest) -> BoltResponse:
        name = request.body["event_id"]
        await asyncio.sleep(0.05 if name == "Ev1" else 0.0)  # the follow-up's store reads
        ended.append(name)
        return BoltResponse(status=200, body="")

    async def main() -> None:
        queue = Arrivals(dispatch, lambda a: None, lambda a: None)
        for n, channel in ((1, "C1"), (2, "C1"), (3, "C2"), (4, "C1")):
            queue.arrive(Arrival(n, HEADERS, event(n, channel)))
        while len(queue):
            await asyncio.sleep(0.001)

    asyncio.run(main())
    assert [name for name in ended if name != "Ev3"] == ["Ev1", "Ev2", "Ev4"]
    assert ended.index("Ev3") < ended.index("Ev1")  # C2's event went at once


def test_stopping_cuts_off_a_waiting_retry_and_leaves_the_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrivals, "PAUSES", (30.0, 30.0, 30.0))
    bolt = Bolt([500])
    assert run(bolt, Arrival(9, HEADERS, BODY), stop_after=0.05) == ([], [9])


def _body(event_id: str, event: dict[str, object]) -> bytes:
    return json.dumps({"type": "event_callback", "team_id": "T1", "event_id": event_id, "event": event}).encode()


MENTION = _body("Ev1", {"type": "app_mention", "channel": "C1", "ts": "1.000100", "text": "<@UBOT> deploy"})
DELETED = _body("Ev2", {"type": "message", "subtype": "message_deleted", "channel": "C1", "deleted_ts": "1.000100",
                       "ts": "2.000200"})


def mention_then_deletion(failures: int) -> tuple[list[str], list[str]]:
    """A mention whose first `failures` hand-overs fail (the store could not take its turn: locked, full), then
    its deletion, in one channel: the events tried, in order, and those handled."""
    tries: list[str] = []
    handled: list[str] = []

    async def dispatch(request: AsyncBoltRequest) -> BoltResponse:
        name = request.body["event_id"]
        tries.append(name)
        if name == "Ev1" and tries.count("Ev1") <= failures:
            return BoltResponse(status=500, body="")
        handled.append(name)
        return BoltResponse(status=200, body="")

    async def main() -> None:
        queue = Arrivals(dispatch, lambda a: None, lambda a: None)
        queue.arrive(Arrival(1, HEADERS, MENTION))
        queue.arrive(Arrival(2, HEADERS, DELETED))
        while len(queue):
            await asyncio.sleep(0.001)

    asyncio.run(main())
    return tries, handled


def test_a_deletion_is_not_handled_before_the_message_whose_first_attempt_failed() -> None:
    """The deletion went to Bolt once the mention's first try had failed, found nothing to take back, and the
    mention became a turn a second later: the agents answered a message its author had deleted."""
    _, handled = mention_then_deletion(1)
    assert handled == ["Ev1", "Ev2"], f"the deletion was handled before the message it deletes: {handled}"


def test_an_event_failing_past_slacks_schedule_lets_its_channels_later_events_go_on() -> None:
    """The channel's later events wait while an earlier one is tried again on Slack's schedule, not for good."""
    tries, handled = mention_then_deletion(MAX_ATTEMPTS + 1)
    assert tries.index("Ev2") == MAX_ATTEMPTS, tries  # after Slack's four tries of Ev1, not before
    assert handled == ["Ev2", "Ev1"], handled


class Store:
    """A store's ping that fails `down` times, then answers."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.pings = 0

    async def ping(self) -> None:
        self.pings += 1
        if self.pings <= self.down:
            raise OSError("database is locked")


def test_an_event_that_failed_while_the_store_did_not_answer_goes_as_soon_as_it_does_and_the_next_after_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """revFG: a mention parked while a `sqlite3` shell held the lock was tried again a minute later (Slack's
    schedule), and the channel's next mention, made once the lock was gone, waited behind it. Now it goes as soon
    as the store answers, in order; the wait is said once when it starts and once when it ends."""
    monkeypatch.setattr(arrivals, "PAUSES", (60.0, 60.0, 60.0))
    monkeypatch.setattr(arrivals, "STORE_LOOK_EVERY", 0.01)
    caplog.set_level(logging.INFO, "bridge.arrivals")
    store = Store(down=3)
    ended: list[str] = []

    async def dispatch(request: AsyncBoltRequest) -> BoltResponse:
        name = request.body["event_id"]
        if name == "Ev1" and store.pings <= store.down:  # its turn could not be recorded
            return BoltResponse(status=500, body="")
        ended.append(name)
        return BoltResponse(status=200, body="")

    async def main() -> None:
        queue = Arrivals(dispatch, lambda a: None, lambda a: None, store.ping)
        queue.arrive(Arrival(1, HEADERS, event(1, "C1")))
        queue.arrive(Arrival(2, HEADERS, event(2, "C1")))
        await asyncio.wait_for(until_empty(queue), 5)

    asyncio.run(main())
    assert ended == ["Ev1", "Ev2"]
    assert caplog.text.count("the database does not answer") == 1
    assert caplog.text.count("the database answers again") == 1


def test_a_failure_while_the_store_answers_waits_slacks_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store answering, the failure was something else (a listener's bug): no tight loop of tries."""
    monkeypatch.setattr(arrivals, "PAUSES", (30.0, 30.0, 30.0))
    store = Store(down=0)
    tries: list[str] = []

    async def dispatch(request: AsyncBoltRequest) -> BoltResponse:
        tries.append(request.body["event_id"])
        return BoltResponse(status=500, body="")

    async def main() -> None:
        queue = Arrivals(dispatch, lambda a: None, lambda a: None, store.ping)
        queue.arrive(Arrival(1, HEADERS, BODY))
        await asyncio.sleep(0.1)
        await queue.stop(0)

    asyncio.run(main())
    assert tries == ["Ev1"] and store.pings == 1


def test_events_waiting_for_the_store_share_one_ping_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many channels' events parked at once ask the store once per look, not once each: its pings (a write on
    SQLite) would crowd the threads the turns' queries run on."""
    monkeypatch.setattr(arrivals, "STORE_LOOK_EVERY", 0.05)
    store = Store(down=1000)

    async def dispatch(request: AsyncBoltRequest) -> BoltResponse:
        return BoltResponse(status=500, body="")

    async def main() -> None:
        queue = Arrivals(dispatch, lambda a: None, lambda a: None, store.ping)
        for n in range(20):
            queue.arrive(Arrival(n, HEADERS, event(n, f"C{n}")))
        await asyncio.sleep(0.12)
        await queue.stop(0)

    asyncio.run(main())
    assert store.pings <= 4


def test_an_event_past_slacks_schedule_is_said_to_go_as_soon_as_the_database_answers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """secKP: past Slack's schedule the log said 'tried again in 300s' while the event in fact waited for the store
    and went the moment it answered. The line names both waits; without a store to ask, only the pause."""
    monkeypatch.setattr(arrivals, "PAUSES", (300.0, 300.0, 300.0))
    monkeypatch.setattr(arrivals, "STORE_LOOK_EVERY", 0.01)
    caplog.set_level(logging.INFO, "bridge.arrivals")
    store = Store(down=3)

    async def dispatch(request: AsyncBoltRequest) -> BoltResponse:
        return BoltResponse(status=200 if store.pings > store.down else 500, body="")

    async def main() -> None:
        queue = Arrivals(dispatch, lambda a: None, lambda a: None, store.ping)
        queue.arrive(Arrival(1, HEADERS, event(1, "C1"), attempts=MAX_ATTEMPTS - 1))  # an earlier run tried it
        await asyncio.wait_for(until_empty(queue), 5)

    asyncio.run(main())
    assert "tried again as soon as the database answers, else in 300s" in caplog.text
    caplog.clear()
    monkeypatch.setattr(arrivals, "PAUSES", (0.001, 0.001, 0.001))
    run(Bolt([500]), Arrival(2, HEADERS, BODY, attempts=MAX_ATTEMPTS - 1))
    assert "kept in the inbox, tried again in 0s" in caplog.text


async def until_empty(queue: Arrivals) -> None:
    while len(queue):
        await asyncio.sleep(0.001)
