"""The lease keeper stops a worker before its lease can expire whenever it cannot prove it still holds it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bridge.store.leases import BindingLeases

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
