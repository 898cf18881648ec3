"""revCA: a workspace's removal handled by another process (several share one database) settles the approval rows
of a turn this process is still running and waiting on its card (`withdraw_ended`). The waiting turn is never told:
its wait reads the rows until they are decided, and at the approval timeout its own decision (`decide`, which
needs `outcome IS NULL`) writes nothing, so it reads and "decides" again and again without ever sleeping.
The store is a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from bridge.approval_desk import ApprovalDesk
from bridge.domain import Binding, Target
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.stop_end import withdraw_ended
from bridge.stopping import ApprovalWithdrawn
from bridge.store import open_store
from bridge.store.approvals import ApprovalStore, Asked
from tests.unit.test_stop_cancel import ALICE, BOB, TURN


def test_a_card_wait_ends_when_another_process_removed_the_workspace(tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        try:
            await store.put_binding(Binding("T1", "C1", Target("agents", (ALICE, BOB))))
            turn_id = await store.accept_turn(TURN, "otid-1")
            assert turn_id is not None and await store.take_turn(turn_id)
            settings = SimpleNamespace(turn_stop_poll_seconds=0.2, approval_timeout_seconds=60, slack_agents={})
            desk = ApprovalDesk(store, settings)  # type: ignore[arg-type]  # process A's, running the turn
            [row] = await desk.store.ask([Asked(turn_id, BOB.id, "call-1", "T1", "C1", "1.000001", BOB.id, "bob",
                                                None, "req-1", "shout", "{}", "U1")])
            await desk.store.card_posted(row.id, "5.000001")
            reads = 0
            get = desk.store.get

            async def counted(approval_id: int):  # type: ignore[no-untyped-def]
                nonlocal reads
                reads += 1
                return await get(approval_id)

            desk.store.get = counted  # type: ignore[method-assign]
            loop = asyncio.get_running_loop()
            waiting = asyncio.ensure_future(desk.wait([row.id], loop.time() + 0.5))  # the card's timeout
            await asyncio.sleep(0.1)

            async def unreachable() -> LettaClient:
                raise LettaError(Kind.UNREACHABLE, "down")

            # Process B hears app_uninstalled: Workspaces.removed ends the turn and withdraws its requests.
            await store.finish_turn(turn_id, "uninstalled", "the app was removed from the workspace")
            await withdraw_ended(unreachable, ApprovalStore(store), [turn_id], "the app was removed from the workspace")
            try:
                await asyncio.wait_for(asyncio.shield(waiting), 3.0)
            except TimeoutError:
                waiting.cancel()
                raise AssertionError(f"the card's wait never ended: it read the row {reads} times in 3 s") from None
            except ApprovalWithdrawn:
                return  # the turn ends as its workspace's (Workspaces.run), and no decision of it is sent
            raise AssertionError("the wait returned the withdrawn requests as decided")
        finally:
            await store.close()

    asyncio.run(main())
