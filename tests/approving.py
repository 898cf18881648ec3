"""A turn's Approvals for runner tests: every request asked about is kept and approved at once, as if a person
pressed Approve on its card."""

from __future__ import annotations

from bridge.domain import ApprovalRequest, Decision, PendingApproval


class ApproveAll:
    stopped = False

    def __init__(self) -> None:
        self.asked: list[ApprovalRequest] = []

    async def decide(self, request: ApprovalRequest) -> tuple[Decision, ...]:
        self.asked.append(request)
        return tuple(Decision(c.tool_call_id, True) for c in request.calls)

    async def sending(self, request: ApprovalRequest) -> None:
        pass

    async def settled(self, request: ApprovalRequest, refused: str | None = None) -> None:
        pass

    async def resumed(self, step: str) -> PendingApproval | None:
        return None
