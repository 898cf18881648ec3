"""`/letta groups` and the connect menu name the agent a group's answers start from, as the connect answer does: a
sleeptime group's main agent (a real 0.16.8 makes one for an agent created with sleeptime enabled, no description,
its one member the background agent that never posts) and a supervisor's manager. Listed by members only, the
sleeptime group showed "sleepy-sleeptime", never `sleepy`, the agent connecting it then names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.slash import Slash, slash_world


@pytest.fixture(scope="module")
def sw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slash]:
    with slash_world(tmp_path_factory.mktemp("groups_who_answers")) as world:
        yield world


def test_the_group_list_and_the_menu_name_the_main_agent_and_the_manager(sw: Slash) -> None:
    """The same words as after connecting: "main agent sleepy", "manager boss"."""
    sleepy, background = sw.letta.add_agent("sleepy"), sw.letta.add_agent("sleepy-sleeptime")
    sw.letta.add_group([background], manager_type="sleeptime", manager_agent_id=sleepy)
    alice, bob, boss = (sw.letta.add_agent(n) for n in ("alice", "bob", "boss"))
    sw.letta.add_group([alice, bob], manager_type="supervisor", manager_agent_id=boss, description="supcrew")
    listing = sw.ask("groups", "C0GROUPSWA")
    lines = {line.split("pattern `")[1].split("`")[0]: line for line in listing.splitlines() if "pattern `" in line}
    assert "main agent sleepy;" in lines["sleeptime"] and "never post" in lines["sleeptime"], lines["sleeptime"]
    assert "manager boss;" in lines["supervisor"] and lines["supervisor"].endswith("alice, bob"), lines["supervisor"]
    menu = sw.send("connect", "C0GROUPSWA").wait()
    options = next(b for b in menu["blocks"] if b["type"] == "actions")["elements"][0]["options"]
    described = {o["description"]["text"].split(":")[0]: o["description"]["text"] for o in options}
    assert described["sleeptime"] == "sleeptime: main agent sleepy; sleepy-sleeptime", described
    assert described["supervisor"] == "supervisor: manager boss; alice, bob", described
