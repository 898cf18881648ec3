"""A Stop while a card waits on a real Letta 0.16.8, the agent's model calling its tools in turn ("use tool shout use
tool shout", tests/real/llm.py): it answers the stop's denial by asking for its next tool, which 0.16.8 keeps
pending. The bridge denies that one too, so the thread's next message is answered (judged by the agent's history:
both requests denied, none left waiting)."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.e2e.approval_rig import ASKER, open_rig
from tests.real.capture_tools import shouting_agent
from tests.real.conftest import Stage

ENDED = {"done", "partial", "failed", "stopped"}


def test_a_stop_while_a_card_waits_leaves_the_thread_answering_on_real_0_16_8(stage: Stage, tmp_path: Path) -> None:
    setup = stage.servers["0.16.8"].setup
    finn = shouting_agent(setup)
    with open_rig(tmp_path, setup, stage.servers["0.16.8"].url, finn) as rig:
        root = rig.mention(f"please use tool shout use tool shout {uuid.uuid4().hex[:8]}")
        rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 120)
        rig.bridge.mention("stop", rig.channel, user=ASKER, thread_ts=root["ts"])
        rig.slack.wait_for(lambda: rig.status(root["ts"]) == "stopped", 120)
        later = rig.bridge.mention("are you there?", rig.channel, user=ASKER, thread_ts=root["ts"])[0]
        rig.slack.wait_for(lambda: rig.status(later["ts"]) in ENDED, 120)
        assert rig.status(later["ts"]) == "done", rig.replies(root["ts"])
        assert len(rig.cards(root["ts"])) == 1
