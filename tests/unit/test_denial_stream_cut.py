"""A live Stop's denial reaches Letta but its stream fails (a timeout, a disconnect during the agent's step): the
request the agent made in answer is not in what was read, so it is looked for in history (letta/approving.py
`_denied`, recovery.still_waiting) and denied too; else 0.16.8 keeps it pending and refuses every later message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from bridge.domain import AgentRef, ApprovalRequest
from bridge.letta.approving import STOPPED, Approving
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.letta.exchange import Asked as Question
from bridge.letta.exchange import Said, Spoken, exchange
from bridge.letta.recovery import still_waiting
from bridge.letta.wire import user_message
from tests.fakes.letta import FakeLetta
from tests.unit.test_stop_end_asked_again import asking_twice


class Journal:
    """The turn's approvals as far as a stop's denials use them: what was recorded, in order."""

    stopped = True

    def __init__(self) -> None:
        self.recorded: list[str] = []

    async def sending(self, request: ApprovalRequest) -> None:
        self.recorded += [c.tool_call_id for c in request.calls]

    async def denying(self, request: ApprovalRequest) -> bool:
        self.recorded += [c.tool_call_id for c in request.calls]
        return True

    async def left_pending(self, request: ApprovalRequest, rounds: int) -> None:
        raise AssertionError("nothing was left pending")


def test_a_request_asked_in_answer_to_a_denial_whose_stream_failed_is_found_in_history_and_denied() -> None:
    """Both requests denied once with the stop's reason, the second recorded before its denial; the agent answers."""
    async def main(letta: FakeLetta, finn: str) -> tuple[list[Spoken], list[str]]:
        client = LettaClient(letta.base_url)
        try:
            spoken = [s async for s in exchange(client, user_message("use shout", "otid-x", "maria"), "finn", True,
                                                agent_id=finn)]
            [question] = [s for s in spoken if isinstance(s, Question)]

            async def cut(message: dict[str, Any]) -> AsyncIterator[Spoken]:
                async for _ in exchange(client, message, "finn", True, agent_id=finn):
                    break  # the denial reached Letta; its answer is lost on the way back
                raise LettaError(Kind.DISCONNECTED, "the stream ended early")
                yield

            async def look(ids: tuple[str, ...], since: Any) -> list[Question]:
                return await still_waiting(client, finn, None, ids, since)

            journal = Journal()
            approving = Approving(journal, AgentRef(finn, "finn"), finn, None, cut, look=look)  # type: ignore[arg-type]
            await approving.withdraw(approving.request([question]))
            later = [s async for s in exchange(client, user_message("next", "otid-y", "maria"), "finn", True,
                                               agent_id=finn)]
            return later, journal.recorded
        finally:
            await client.aclose()

    with FakeLetta(version="0.16.8") as letta:
        finn = asking_twice(letta)
        later, recorded = asyncio.run(main(letta, finn))
        decisions = letta.approval_decisions()
    assert [[(a["approve"], a.get("reason")) for a in d["approvals"]] for d in decisions] == [
        [(False, STOPPED)]
    ] * 2, decisions
    assert len(recorded) == 2 and recorded[1] == decisions[1]["approvals"][0]["tool_call_id"], recorded
    assert [s.text for s in later if isinstance(s, Said)] == ["finn says hi"], later
