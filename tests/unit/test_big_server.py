"""/letta's lists and connect menu on a big Letta server (hundreds of agents, a few groups): what was cut is said,
and only what was cut; agents sharing a name can be told apart in the menu."""

from __future__ import annotations

import asyncio

from bridge.configure import Configurator
from bridge.domain import Catalog
from bridge.letta.client import LettaClient
from bridge.letta.paging import LIST_CAP
from bridge.slack import blocks, menu
from tests.fakes.letta import FakeLetta

CUT = "more than the bridge lists"


def catalog(letta: FakeLetta) -> Catalog:
    async def go() -> Catalog:
        client = LettaClient(letta.base_url)
        try:
            return await Configurator(None, None, client, None).catalog()  # type: ignore[arg-type]
        finally:
            await client.aclose()

    return asyncio.run(go())


def contexts(message: blocks.Message) -> str:
    return " ".join(e["text"] for b in message.blocks if b["type"] == "context" for e in b["elements"])


def test_many_agents_and_a_few_groups_only_the_agents_are_said_to_be_cut(letta: FakeLetta) -> None:
    ids = [letta.add_agent(f"agent {n}") for n in range(LIST_CAP + 20)]
    for n in range(3):
        letta.add_group(ids[n : n + 2], description=f"crew {n}")
    found = catalog(letta)
    assert len(found.agents) == LIST_CAP and found.groups is not None and len(found.groups) == 3
    for details in (True, False):
        groups = blocks.groups_list(found, "http://letta", "/letta", details).text
        assert CUT not in groups, "all three groups are listed"
        agents = blocks.agents_list(found, "http://letta", "/letta", details).text
        assert CUT in agents, f"the agents were cut at {LIST_CAP} (details={details})"
    group_menu = menu.menu(found, "http://letta", "/letta")
    assert "Only the first" not in contexts(group_menu), "the group menu lists every group"
    agent_menu = menu.menu(found, "http://letta", "/letta", agents=True)
    assert "Only the first 100" in contexts(agent_menu)


def test_many_groups_and_a_few_agents_only_the_groups_are_said_to_be_cut(letta: FakeLetta) -> None:
    ids = [letta.add_agent(f"agent {n}") for n in range(3)]
    for n in range(LIST_CAP + 5):
        letta.add_group(ids[:2], description=f"crew {n}")
    found = catalog(letta)
    assert len(found.agents) == 3 and found.groups is not None and len(found.groups) == LIST_CAP
    for details in (True, False):
        assert CUT in blocks.groups_list(found, "http://letta", "/letta", details).text
        assert CUT not in blocks.agents_list(found, "http://letta", "/letta", details).text
    assert "Only the first" not in contexts(menu.menu(found, "http://letta", "/letta", agents=True))


def test_a_groups_members_beyond_the_listed_agents_are_named_not_shown_as_ids(letta: FakeLetta) -> None:
    oldest = [letta.add_agent(name) for name in ("Ada", "Brio")]  # 0.16.8 lists the newest first: these are cut
    for n in range(LIST_CAP + 3):
        letta.add_agent(f"agent {n}")
    letta.add_group(oldest, description="old crew")
    found = catalog(letta)
    assert not set(oldest) & {a.id for a in found.agents}
    assert "Ada, Brio" in blocks.groups_list(found, "http://letta", "/letta").text
    [option] = next(b for b in menu.menu(found, "http://letta", "/letta").blocks if b["type"] == "actions")[
        "elements"
    ][0]["options"]
    assert option["description"]["text"] == "round_robin: Ada, Brio"


def test_agents_or_groups_sharing_a_name_can_be_told_apart_once_picked(letta: FakeLetta) -> None:
    """A picked option shows only its text (the id in its description is gone from the chip): two "Helper"s
    would look the same in the multi-select and as manager."""
    long = "Research helper with a very long name that Slack would clip at seventy-five characters"
    twins = [letta.add_agent(name) for name in ("Helper", "Helper", long, long, "Solo 🤖")]
    letta.add_group(twins[:2], description="crew")
    letta.add_group(twins[:2], description="crew")
    found = catalog(letta)
    agent_menu = menu.menu(found, "http://letta", "/letta", agents=True)
    for select in (e for b in agent_menu.blocks if b["type"] == "actions" for e in b["elements"]):
        if select["action_id"] in (menu.PICK_AGENTS, menu.PICK_MANAGER):
            texts = {o["value"]: o["text"]["text"] for o in select["options"]}
            assert len(set(texts.values())) == len(texts), texts
            assert all(len(t) <= menu.OPTION_TEXT_MAX for t in texts.values())
            assert texts[twins[4]] == "Solo 🤖", "a name no other agent has is shown as it is"
            assert all(f"(…{t[-6:]})" in texts[t] for t in twins[:4]), "the id's tail tells twins apart"
    group_menu = menu.menu(found, "http://letta", "/letta")
    options = next(b for b in group_menu.blocks if b["type"] == "actions")["elements"][0]["options"]
    assert len({o["text"]["text"] for o in options}) == 2


def test_a_groups_manager_beyond_the_listed_agents_is_named(letta: FakeLetta) -> None:
    """The catalog carries a group's manager (a sleeptime group's main agent), looked up like a member when the
    agent list left it out: the list and the menu name the agent that answers."""
    main, background = (letta.add_agent(name) for name in ("Sleepy", "Sleepy-sleeptime"))
    for n in range(LIST_CAP + 3):
        letta.add_agent(f"agent {n}")
    letta.add_group([background], manager_type="sleeptime", manager_agent_id=main)
    [group] = catalog(letta).groups or ()
    assert group.manager is not None and (group.manager.id, group.manager.name) == (main, "Sleepy")
