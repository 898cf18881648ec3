"""bridge/arrivals.py: each recorded event goes to Bolt once when it succeeds, is tried again after a failure
(counting the attempts of earlier runs), dropped after the last, and left in the inbox when stopping cuts it off."""

from __future__ import annotations

import asyncio
import json

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


def test_an_event_is_dropped_after_the_last_attempt_counting_earlier_runs() -> None:
    bolt = Bolt([500] * 10)
    assert run(bolt, Arrival(4, HEADERS, BODY, attempts=MAX_ATTEMPTS - 2)) == ([4], [4, 4])
    assert len(bolt.requests) == 2
    spent = Bolt([200])
    assert run(spent, Arrival(5, HEADERS, BODY, attempts=MAX_ATTEMPTS)) == ([5], [])
    assert spent.requests == []


def test_stopping_cuts_off_a_waiting_retry_and_leaves_the_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrivals, "PAUSES", (30.0, 30.0, 30.0))
    bolt = Bolt([500])
    assert run(bolt, Arrival(9, HEADERS, BODY), stop_after=0.05) == ([], [9])
