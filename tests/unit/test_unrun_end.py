"""`Store.unrun_end`: how a turn that never ran ended, which a queue notice says ("Not answered: …"). A turn
stopped or withdrawn while it waited (and why: deleted, or edited away); one stopped after it was taken ran (it has
its binding), and its notice's promise came true (revU: it was told "stopped before its turn came")."""

from __future__ import annotations

import asyncio

from bridge.domain import Turn
from bridge.store import open_store
from bridge.store.slack_changes import TakenBack, how_unrun, withdraw_turn


def test_only_a_turn_that_never_ran_has_an_unrun_end(database_url: str) -> None:
    async def main() -> None:
        store = open_store(database_url)
        await store.open()
        try:
            ids = []
            for n in range(4):
                turn = Turn("T1", "C1", f"1.00000{n}", "1.000000", "U1", f"q{n}", f"Ev{n}")
                ids.append(await store.accept_turn(turn, f"o{n}"))
            waited, withdrawn, ran, waits = ids
            assert waited and withdrawn and ran and waits
            assert await store.take_turn(ran) is not None  # taken: it runs
            await withdraw_turn(store, "T1", "C1", "1.000001", "deleted")
            stopped = await store.stop_turns("T1", "C1", "1.000000", "U1")
            assert {s.turn_id for s in stopped} >= {waited, ran}
            await store.finish_turn(ran, "stopped", "stopped by U1")
            assert [await store.unrun_end(i) for i in ids] == ["stopped", "deleted", None, "stopped"]
            assert await store.unrun_end(9999) is None
        finally:
            await store.close()

    asyncio.run(main())


def test_a_turn_edited_away_ends_in_the_words_of_its_edit(database_url: str) -> None:
    """revBJ: the process showing the notice may not be the one that took the edit; it reads why from the store,
    whose error says it too (an older row, written when every withdrawal was a deletion, still reads deleted)."""

    async def main() -> None:
        store = open_store(database_url)
        await store.open()
        try:
            whys: list[TakenBack] = ["addressed", "unmentioned", "emptied", "stop", "deleted"]
            ids = []
            for n, why in enumerate(whys):
                turn = Turn("T1", "C1", f"1.00000{n}", "1.000000", "U1", f"q{n}", f"Ev{n}")
                ids.append(await store.accept_turn(turn, f"o{n}"))
                await withdraw_turn(store, "T1", "C1", f"1.00000{n}", why)
            assert [await store.unrun_end(i) for i in ids if i] == whys
            assert how_unrun("withdrawn: its message was edited to speak to someone else before it ran") == "addressed"
            assert how_unrun("withdrawn: its message was deleted before it ran") == "deleted"  # an older row
            assert how_unrun("withdrawn: its message was gone") == "deleted"
            assert how_unrun("stopped by U1") == "stopped"
        finally:
            await store.close()

    asyncio.run(main())
