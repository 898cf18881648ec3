"""What a thread is told when Letta refuses its message because the agent waits for a tool-call decision
(ApprovalDesk.refused): pointed at a card still to decide first; a card decided and not yet sent is on its way; only
a decision whose send failed is said to have failed (found by review revDM: a request of two cards, one decided,
was said to have failed to reach Letta)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from bridge.approval_desk import DECIDED, ELSEWHERE, HERE, ON_ITS_WAY, PENDING, ApprovalDesk
from bridge.domain import AgentFailure, Turn
from bridge.store import open_store
from bridge.store.approvals import Asked

TURN = Turn("T1", "C1", "2.000001", "2.000001", "U1", "hello again", "Ev2")


def told(tmp_path: Path, cards: int, decide: int, send: bool, thread: str = "1.000001") -> str:
    async def main() -> str:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        try:
            settings = SimpleNamespace(slack_agents={})
            desk = ApprovalDesk(store, settings)  # type: ignore[arg-type]
            rows = await desk.store.ask([
                Asked(1, "agent-f", f"call_{n}", "T1", "C1", thread, "agent-f", "finn", None, "message-1", "shout",
                      "{}", "U1")
                for n in range(cards)
            ])
            for row in rows:
                await desk.store.card_posted(row.id, f"4.00000{row.id}")
            for row in rows[:decide]:
                await desk.store.decide(row.id, "U1", True, "")
                if send:
                    await desk.store.sending(row.id)
            failure = AgentFailure("finn", "refused", "pending_approval", "agent-f", pending_approval=True)

            async def shown(channel: str) -> str:
                return f"#{channel.lower()}"

            return await desk.refused(TURN, failure, shown)
        finally:
            await store.close()

    return asyncio.run(main())


def test_a_card_still_to_decide_is_pointed_at(tmp_path: Path) -> None:
    assert told(tmp_path, 1, 0, False) == (
        f"{PENDING.format(subject='Finn')} {ELSEWHERE.format(channel='this channel')}"
    )


def test_of_two_cards_one_decided_the_other_is_pointed_at(tmp_path: Path) -> None:
    assert told(tmp_path, 2, 1, False, thread=TURN.thread_ts).endswith(HERE)


def test_a_decided_card_not_sent_yet_is_on_its_way(tmp_path: Path) -> None:
    assert told(tmp_path, 1, 1, False, thread=TURN.thread_ts).endswith(
        ON_ITS_WAY.format(where="above in this thread")
    )


def test_only_a_decision_sent_and_unsettled_is_said_to_have_failed(tmp_path: Path) -> None:
    assert told(tmp_path, 1, 1, True).endswith(DECIDED.format(where="in a thread of this channel"))
