"""A dynamic group's manager is told who just spoke only when that member replied: one whose send failed said
nothing, and the manager's next choice must not read otherwise."""

from __future__ import annotations

from bridge.domain import AgentRef, AgentReply, Target
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns_play import run


def test_a_dynamic_manager_is_not_told_a_member_whose_send_failed_just_spoke(letta: FakeLetta) -> None:
    """alice was deleted on Letta: her send failed. Before: the manager's next prompt read '(alice just spoke)'."""
    alice, bob, boss = letta.add_agent("alice"), letta.add_agent("bob"), letta.add_agent("boss")
    letta.set_reply(boss, lambda text: "bob" if "Members: bob" in text else "alice")
    letta.remove_agent(alice)
    target = Target("agents", (AgentRef(alice, "alice"), AgentRef(bob, "bob")), manager_type="dynamic",
                    manager=AgentRef(boss, "boss"), max_turns=2)
    events = run(letta, target)
    assert [e.agent_name for e in events if isinstance(e, AgentReply)] == ["bob"], events
    second = [i.text for i in letta.inputs if i.agent_id == boss][1]
    assert "just spoke" not in second, second
