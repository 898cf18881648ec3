"""A binding's runner is said as its setting and what that resolves to, the same way in every command."""

from __future__ import annotations

from bridge.domain import AgentRef, Binding, Target
from bridge.letta.chooser import RunnerUse, resolve

GROUP = Target("group", (AgentRef("agent-1", "alice"),), group_id="group-1", manager_type="round_robin")
AGENTS = Target("agents", (AgentRef("agent-1", "alice"),))


def bound(target: Target, runner: str = "auto") -> Binding:
    return Binding("T1", "C1", target, runner, "cli")  # type: ignore[arg-type]


def test_auto_says_what_it_picks_and_why() -> None:
    assert str(resolve(bound(GROUP), "auto", "0.16.8")) == "auto (bridge on Letta 0.16.8)"
    assert str(resolve(bound(GROUP), "auto", "0.11.7")) == "auto (server on Letta 0.11.7)"
    assert str(resolve(bound(GROUP), "server", None)) == "auto (server by LETTA_GROUP_RUNNER)"
    assert str(resolve(bound(AGENTS), "auto", None)) == "auto (bridge for a list of agents)"
    assert str(resolve(bound(GROUP), "auto", None)) == "auto (not known now: the Letta server did not answer)"


def test_a_setting_that_is_what_runs_is_said_once() -> None:
    assert str(resolve(bound(GROUP, "server"), "auto", "0.16.8")) == "server"
    assert str(resolve(bound(AGENTS, "bridge"), "auto", None)) == "bridge"
    assert str(RunnerUse("bridge", "bridge")) == "bridge"
