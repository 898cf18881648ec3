"""A channel answered by DEFAULT_TARGET (DEFAULT_TARGET_IN_CHANNELS=true, no /letta binding) whose id Slack changes
(channel_id_changed, a private channel shared through Slack Connect). docs/mentions.md: the bridge moves "its
threads (follow-ups go on), each thread's Letta conversations ... and its waiting turns run there", binding or
not."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from bridge.domain import Turn
from bridge.store import Store
from bridge.store.slack_changes import move_channel
from tests.unit.test_relay import Worker, mention, relaying, until, until_done
from tests.unit.test_store import run


def _in_g1(n: int, text: str) -> Turn:
    return replace(mention(n, text), channel_id="G1")


def test_a_default_target_channel_whose_id_changed_keeps_its_threads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With DEFAULT_TARGET answering the unbound channel, follow-ups in the bot's thread stayed answered under the
    old id only: the move was made only with a binding to move, so under the new id the thread was not the bot's
    (not_the_bots_thread). A follow-up there is answered after the move; Slack's event delivered again moves
    nothing, and the log says so."""
    caplog.set_level(logging.INFO, logger="bridge.relay")

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", Worker, default_applies=lambda _channel: True) as rig:
            await rig.relay.accept(_in_g1(1, "first"))
            await until(lambda: bool(rig.worker.jobs))
            rig.worker.go_on.set()
            await asyncio.wait_for(until_done(rig.store), 10)
            await rig.relay.channel_moved("T1", "G1", "C1")
            await rig.relay.channel_moved("T1", "G1", "C1")  # Slack's retry of the event
            await rig.relay.accept(replace(mention(2, "and the logs?", thread=1), follow_up=True))
            await until(lambda: len(rig.worker.jobs) == 2)
            await asyncio.wait_for(until_done(rig.store), 10)
            return rig.worker.texts()

    assert asyncio.run(main()) == ["first", "and the logs?"], "the follow-up in the bot's thread is answered"
    moved = [r.getMessage().split("moved=")[1] for r in caplog.records if "channel id changed" in r.getMessage()]
    assert moved == ["True", "False"], "the event delivered again moved nothing"


def test_an_unbound_channels_turns_and_conversations_move_with_its_id(database_url: str) -> None:
    """Without a binding under either id, the channel's waiting turns and its threads' conversations move too."""

    async def body(store: Store) -> None:
        waiting = await store.accept_turn(Turn("T1", "G1", "1.000001", "1.000001", "U1", "a", "Ev1"), "o1")
        await store.put_conversation(("T1", "G1", "1.000001"), "agent-a", "conv-1")
        assert await move_channel(store, "T1", "G1", "C1") is True
        assert await move_channel(store, "T1", "G1", "C1") is False, "delivered again: nothing left to move"
        assert [p.turn_id for p in await store.unfinished_turns("T1", "C1")] == [waiting]
        assert await store.conversation(("T1", "C1", "1.000001"), "agent-a") == "conv-1"

    run(database_url, body)
