"""Reading a server-run supervisor's workers out of the manager's tool return (0.11.7 capture, README §5)."""

from __future__ import annotations

import json
from typing import Any

from bridge.domain import AgentRef, Target
from bridge.letta.exchange import attribute, authored_replies
from bridge.letta.models import LettaResponse
from bridge.letta.stream import MESSAGE, Collector
from bridge.letta.supervised import worker_replies
from tests.reference import LETTA

ALICE = "agent-608c2f45-16d5-4c4a-a88c-2ab4ccc6a410"
BOB = "agent-f60918c0-2bdb-4b11-87de-63d6c786c845"
CAROL = "agent-df5c4135-825f-4570-95e7-995ef62d77d7"
MANAGER = "agent-7e20a717-cad3-4f65-97b5-04333f2a6b3d"


def _capture() -> dict[str, Any]:
    return json.loads((LETTA / "0.11.7" / "groups-send-supervisor.json").read_text())["response"]["body"]


def _target(manager_type: str = "supervisor") -> Target:
    return Target(
        "group",
        (AgentRef(ALICE, "alice"), AgentRef(BOB, "bob"), AgentRef(CAROL, "carol")),
        "group-73dff539-1191-4f4f-ac61-794ae2ad5d8d",
        manager_type,
        manager=AgentRef(MANAGER, "mgr_sup"),
    )


def test_the_captured_tool_return_lists_each_worker_by_agent_id() -> None:
    [tool_return] = [m["tool_return"] for m in _capture()["messages"] if m["message_type"] == "tool_return_message"]
    assert worker_replies(tool_return) == [(ALICE, "alice says hi"), (BOB, "bob says hi"), (CAROL, "carol says hi")]


def test_quotes_apostrophes_newlines_and_said_inside_a_reply_survive() -> None:
    tricky = "it's \"fine\", she said: 'ok'\nand agent-x said: 'no'"
    listed = json.dumps([f"{ALICE} said: '{tricky}'", f"{BOB} said: ''"])
    assert worker_replies(listed) == [(ALICE, tricky), (BOB, "")]
    assert worker_replies(repr([f"{ALICE} said: '{tricky}'"])) == [(ALICE, tricky)]


def test_a_tool_return_that_is_not_a_readable_list_is_split_at_each_agent_id() -> None:
    listed = json.dumps([f"{ALICE} said: 'one, \"two\"'", f"{BOB} said: 'three'"])
    assert worker_replies(listed[:-1]) == [(ALICE, 'one, "two"'), (BOB, "three")]  # cut short
    assert worker_replies(f"{ALICE} said: 'plain'") == [(ALICE, "plain")]
    assert worker_replies("") == [] and worker_replies("no workers here") == [] and worker_replies(None) == []


def test_the_plain_send_posts_each_worker_under_its_name_then_the_manager() -> None:
    response = LettaResponse.model_validate(_capture())
    target = _target()
    replies = [attribute(target, a, t, "group", i) for i, (a, t) in enumerate(authored_replies(response, "grp"))]
    assert [(r.agent_name, r.text, r.agent_id) for r in replies if r] == [
        ("alice", "alice says hi", ALICE),
        ("bob", "bob says hi", BOB),
        ("carol", "carol says hi", CAROL),
        ("mgr_sup", "mgr_sup says hi", MANAGER),
    ]


def test_the_stream_gives_the_workers_when_the_tool_returns() -> None:
    collector = Collector("grp")
    out = [spoken for m in _capture()["messages"] for spoken in collector.add(MESSAGE.validate_python(m))]
    assert out == [
        (ALICE, "alice says hi"), (BOB, "bob says hi"), (CAROL, "carol says hi"), ("mgr_sup", "mgr_sup says hi")
    ]


def test_an_unknown_worker_id_is_posted_under_the_id_and_a_dynamic_managers_choice_is_not_posted() -> None:
    stranger = "agent-00000000-0000-4000-8000-000000000000"
    reply = attribute(_target(), stranger, "hi", "group", 0)
    assert reply is not None and reply.agent_name == stranger and reply.agent_id is None
    dynamic = Target("group", (AgentRef(ALICE, "alice"),), "g", "dynamic", manager=AgentRef(MANAGER, "mgr_dyn"))
    assert attribute(dynamic, "mgr_dyn", "alice", "group", 0) is None
    assert attribute(dynamic, "somebody", "x", "group", 0) is None
    spoke = attribute(dynamic, "alice", "hello", "group", 1)
    assert spoke is not None and spoke.agent_id == ALICE
