"""A Slack thread's Letta conversation is made once, even when the answer to its creation is lost on the way back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.letta.client import LettaClient
from bridge.letta.errors import LettaError
from bridge.store import open_store
from bridge.threads import ThreadConversations
from tests.fakes.letta import FakeLetta

CLOUDFLARE_524 = b"<html><head><title>524: A timeout occurred</title></head><body>cloudflare</body></html>"


def _thread(letta: FakeLetta, tmp_path: Path, agent: str) -> tuple[str | None, str | None]:
    """The conversation the thread gets on its first and its next turn (None where making it failed)."""

    async def main() -> tuple[str | None, str | None]:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        client = LettaClient(letta.base_url)
        got: list[str | None] = []
        try:
            for _ in range(2):
                threads = ThreadConversations(store, client, "T1", "C1", "1.0")  # one per turn, as turns.py
                try:
                    got.append(await threads.conversation(agent))
                except LettaError:
                    got.append(None)
        finally:
            await client.aclose()
            await store.close()
        return got[0], got[1]

    return asyncio.run(main())


def test_a_conversation_whose_creation_answer_was_lost_is_found_not_made_again(
    letta: FakeLetta, tmp_path: Path
) -> None:
    """Cloudflare answered 524 after forwarding the create to Letta, which made the conversation: the turn failed and
    the thread's next turn made a second one; the first stayed on Letta for ever, empty (one per lost answer)."""
    alice = letta.add_agent("alice")
    letta.gateway_next("POST", r"/v1/conversations/", 524, CLOUDFLARE_524,
                       {"server": "cloudflare", "cf-ray": "8c1f2e3d4a5b6c7d-AMS", "content-type": "text/html"})
    first, second = _thread(letta, tmp_path, alice)
    assert len(letta.conversations) == 1, letta.conversations
    [made] = letta.conversations
    assert first == made and second == made


@pytest.mark.parametrize("status", [500, 422])
def test_a_conversation_letta_refused_to_make_is_not_looked_for(letta: FakeLetta, tmp_path: Path, status: int) -> None:
    """A refusal is Letta's own answer: nothing was made, the turn fails, and the next turn makes it."""
    alice = letta.add_agent("alice")
    letta.fail_next("POST", r"/v1/conversations/", status, body={"detail": "An unknown error occurred"})
    first, second = _thread(letta, tmp_path, alice)
    assert first is None and second is not None and list(letta.conversations) == [second]
    assert not [r for r in letta.requests if r.method == "GET" and r.path == "/v1/conversations/"]


def test_a_conversation_made_by_the_loser_of_a_race_is_deleted_not_left(letta: FakeLetta, tmp_path: Path) -> None:
    """Two runs of the thread (a process taking over a binding while the first still ran) both found no conversation
    and both made one; the store kept the first, and the second stayed on Letta for ever, empty."""
    alice = letta.add_agent("alice")

    async def main() -> list[str | None]:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        client = LettaClient(letta.base_url)
        try:
            both = [ThreadConversations(store, client, "T1", "C1", "1.0") for _ in range(2)]
            return list(await asyncio.gather(*(t.conversation(alice) for t in both)))
        finally:
            await client.aclose()
            await store.close()

    first, second = asyncio.run(main())
    assert first == second and list(letta.conversations) == [first], letta.conversations
    assert len([r for r in letta.requests if r.method == "POST" and r.path == "/v1/conversations/"]) == 2, \
        "no race happened: the test proves nothing"


def test_a_deleted_conversation_renewed_by_two_runs_leaves_no_empty_conversation(
    letta: FakeLetta, tmp_path: Path
) -> None:
    """revCO: as test_a_conversation_made_by_the_loser_of_a_race_is_deleted_not_left, for one deleted on Letta:
    both runs renew it, the store keeps the first, and the loser's stays on Letta for ever, empty."""
    alice = letta.add_agent("alice")

    async def main() -> list[str]:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        client = LettaClient(letta.base_url)
        try:
            first = ThreadConversations(store, client, "T1", "C1", "1.0")
            gone = await first.conversation(alice)
            assert gone is not None
            await client.delete_conversation(gone)
            both = [ThreadConversations(store, client, "T1", "C1", "1.0") for _ in range(2)]
            return list(await asyncio.gather(*(t.renew(alice, gone) for t in both)))
        finally:
            await client.aclose()
            await store.close()

    a, b = asyncio.run(main())
    assert a == b
    assert len([r for r in letta.requests if r.method == "POST" and r.path == "/v1/conversations/"]) == 3, \
        "no race happened: the test proves nothing"
    assert list(letta.conversations) == [a], letta.conversations
