"""An agent deleted on the App Server after its thread's conversation was made. A real 0.34.12 (a real server run
against the bridge, as tests/real/test_appserver_bridge.py runs it) accepts the input to that conversation and ends
the turn `error` "Agent agent-local-… not found" (as capture ws-input-unknown-agent.json), nothing stored, so the
thread is told "Letta does not know gina (…) It may have been deleted"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_app_server import Rig, _rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(tmp_path)


def test_a_follow_up_to_a_deleted_agents_conversation_is_said_as_the_real_server_says(rig: Rig) -> None:
    channel, ids = rig.bind(("gina", "ok"))
    root = rig.mention(channel, "hello")
    assert rig.done(channel, root) == {"white_check_mark"}
    assert rig.said(channel, root) == [("gina", "gina says hi")]

    rig.app.agents.pop(ids["gina"])  # as agent_delete does (tests/fakes/appserver.py _on_agent_delete)
    rig.mention(channel, "still there?", thread_ts=root)
    rig.slack.wait_for(lambda: len(rig.said(channel, root)) >= 2, 20)
    said = rig.said(channel, root)[1:]
    assert not any(text.endswith("says hi") for _, text in said), said  # nobody answered: the agent is gone
    assert any("Letta does not know gina" in text and "It may have been deleted" in text for _, text in said), said
    [conversation] = {t.conversation for t in rig.app.inputs if t.agent_id == ids["gina"]}
    assert len(rig.app.inputs) == 1  # no model call for the deleted agent
    assert [m["message_type"] for m in rig.app.history_of(conversation)][-1] == "assistant_message"  # nothing stored
