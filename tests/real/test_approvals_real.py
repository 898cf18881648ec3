"""Tool approvals through the whole bridge (`python -m bridge serve`, fake Slack) on real servers, judged by the
agent's real history: on Letta 0.16.8 an agent whose tool requires approval (made as reference §17's captures made
it), and on the Letta App Server 0.34.12 with LETTA_TOOLS on, a tool that is not read-only (`Write`). A person
approves on the card: the tool runs once, the agent replies, and the card says who decided."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from bridge.letta.appserver import AppServerClient
from bridge.letta.appserver.deltas import ApprovalRequestDelta, AssistantDelta, ToolReturnDelta, UserDelta
from tests.e2e.approval_rig import ASKER, open_rig
from tests.real import test_appserver_bridge
from tests.real.capture_tools import SHOUT
from tests.real.conftest import Stage
from tests.real.test_appserver_bridge import AppServer

server = test_appserver_bridge.server  # a real App Server for this module, as that module starts it


def _after(history: list[dict[str, Any]], marker: str) -> list[dict[str, Any]]:
    """The messages stored after the user message holding `marker` (it once, exactly)."""
    users = [i for i, m in enumerate(history) if m.get("message_type") == "user_message" and marker in str(
        m.get("content"))]
    assert len(users) == 1, f"the mention reached the agent {len(users)} times"
    return history[users[0] + 1 :]


def test_an_approval_round_trip_on_real_0_16_8(stage: Stage, tmp_path: Path) -> None:
    setup = stage.servers["0.16.8"].setup
    finn = setup.agent("finn")
    made = setup.http.post("/v1/tools/", json={"source_code": SHOUT, "tags": ["slack-bridge-real"]})
    made.raise_for_status()
    setup.http.patch(f"/v1/agents/{finn}/tools/attach/{made.json()['id']}").raise_for_status()
    setup.http.patch(f"/v1/agents/{finn}/tools/approval/shout", json={"requires_approval": True}).raise_for_status()
    url = stage.servers["0.16.8"].url
    with open_rig(tmp_path, setup, url, finn, LETTA_CONVERSATIONS="false") as rig:
        marker = f"please use tool shout {uuid.uuid4().hex[:8]}"
        root = rig.mention(marker)
        rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 120)
        [card] = rig.cards(root["ts"])
        assert card.args["username"] == "finn"
        rig.press(card, "letta_approve_tool", ASKER)
        rig.slack.wait_for(lambda: rig.status(root["ts"]) in {"done", "partial", "failed"}, 120)
        assert rig.status(root["ts"]) == "done", rig.replies(root["ts"])
        assert rig.replies(root["ts"])[-1] == "finn says hi"
        rig.slack.wait_for(lambda: any("Approved by <@U0123ABCD>" in u for u in rig.updates(card)))
        after = _after(setup.history(finn), marker)
        kinds = [m["message_type"] for m in after]
        returns = [m for m in after if m["message_type"] == "tool_return_message"]
        print(f"0.16.8 history after the mention: {kinds}")
        assert [(r.get("name"), r.get("status")) for r in returns] == [("shout", "success")], returns
        assert kinds.count("approval_request_message") == 1
        said = [m for m in after if m["message_type"] == "assistant_message"]
        assert [m.get("content") for m in said][-1:] == ["finn says hi"]


def _conversation_history(url: str, agent: str) -> list[object]:
    async def main() -> list[object]:
        client = AppServerClient(url, request_timeout=60.0)
        try:
            out: list[object] = []
            for conversation in await client.list_conversations(agent):
                before: str | None = None
                while True:
                    page, before = await client.history(conversation.id, before=before)
                    out = [*reversed(page), *out]
                    if before is None or not page:
                        break
            return out
        finally:
            await client.aclose(wait=5.0, force=True)

    return asyncio.run(main())


def test_an_approval_round_trip_on_the_real_app_server(server: AppServer, tmp_path: Path) -> None:
    alice = server.agents("alice")["alice"]
    app = server.url
    with open_rig(tmp_path, server, app, alice, LETTA_TOOLS="true") as rig:
        marker = f"please use tool Write {uuid.uuid4().hex[:8]}"
        root = rig.mention(marker)
        rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 120)
        [card] = rig.cards(root["ts"])
        assert card.args["username"] == "alice" and "Write" in card.args["text"]
        rig.press(card, "letta_approve_tool", ASKER)
        rig.slack.wait_for(lambda: rig.status(root["ts"]) in {"done", "partial", "failed"}, 120)
        assert rig.status(root["ts"]) == "done", rig.replies(root["ts"])
        assert rig.replies(root["ts"])[-1] == "alice says hi"
        rig.slack.wait_for(lambda: any("Approved by <@U0123ABCD>" in u for u in rig.updates(card)))
        history = _conversation_history(app, alice)
        users = [i for i, m in enumerate(history) if isinstance(m, UserDelta) and marker in m.text]
        assert len(users) == 1
        after = history[users[0] + 1 :]
        print("App Server history after the mention:", [type(m).__name__ for m in after],
              [(m.status, (m.tool_return or "")[:80]) for m in after if isinstance(m, ToolReturnDelta)])
        asked = [m for m in after if isinstance(m, ApprovalRequestDelta)]
        returns = [m for m in after if isinstance(m, ToolReturnDelta)]
        assert len(asked) == 1 and asked[0].tool_call is not None and asked[0].tool_call.name == "Write"
        assert len(returns) == 1 and returns[0].tool_call_id == asked[0].tool_call.tool_call_id
        assert [m.text for m in after if isinstance(m, AssistantDelta)][-1:] == ["alice says hi"]
