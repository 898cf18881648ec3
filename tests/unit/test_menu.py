"""The /letta connect menu: what it offers (within Slack's limits) and how a press is read back."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.domain import AgentInfo, AgentRef, Catalog, Pattern, Target
from bridge.slack import menu
from bridge.slack.menu import Choice

ALICE = AgentRef("agent-00000000-0000-4000-8000-00000000000a", "alice")
BOB = AgentRef("agent-00000000-0000-4000-8000-00000000000b", "bob")
BOSS = "agent-00000000-0000-4000-8000-0000000000cc"
G = "group-2a295a94-fb48-4739-8bc1-a06c1a881e2b"
AGENTS = (AgentInfo(ALICE.id, "alice"), AgentInfo(BOB.id, "bob"))


def action_ids(message: menu.Message) -> list[str]:
    return [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


def test_menu_lists_groups_with_pattern_and_agent_names_within_slack_limits() -> None:
    groups = tuple(Target("group", (ALICE, BOB), f"group-{i}", "supervisor", "d" * 200) for i in range(130))
    message = menu.menu(Catalog(groups, ()), "http://letta", "/letta")
    elements = [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    [select] = [e for e in elements if e["type"] == "static_select"]
    assert select["action_id"] == menu.PICK_GROUP and len(select["options"]) == 100
    first = select["options"][0]
    assert first["value"] == "group-0" and len(first["text"]["text"]) <= 75
    assert first["description"]["text"] == "supervisor: alice, bob"
    assert any(b["type"] == "context" for b in message.blocks), "says that the list was cut"
    assert action_ids(message) == [menu.PICK_GROUP, menu.CANCEL], "no agents: nothing to pick instead"


def test_with_groups_and_agents_the_menu_offers_to_pick_agents_instead() -> None:
    crew = Target("group", (ALICE, BOB), G, "round_robin", "crew")
    message = menu.menu(Catalog((crew,), AGENTS), "http://letta", "/letta")
    assert action_ids(message) == [menu.PICK_GROUP, menu.SHOW_AGENTS, menu.CANCEL]
    agents = menu.menu(Catalog((crew,), AGENTS), "http://letta", "/letta", agents=True)
    assert action_ids(agents)[0] == menu.PICK_AGENTS and "group routes" not in agents.blocks[0]["text"]["text"]


def test_the_agent_picker_offers_the_pattern_manager_max_turns_and_termination_token() -> None:
    message = menu.menu(Catalog(None, AGENTS), "http://letta", "/letta")
    assert action_ids(message) == [
        menu.PICK_AGENTS, menu.PICK_PATTERN, menu.PICK_MANAGER, menu.PICK_MAX_TURNS, menu.CONNECT_AGENTS, menu.CANCEL,
    ]
    assert "no group routes" in message.blocks[0]["text"]["text"]
    row = next(b for b in message.blocks if b.get("block_id") == menu.PATTERN_BLOCK)["elements"]
    assert [o["value"] for o in row[0]["options"]] == ["in_order", "supervisor", "dynamic", "broadcast"]
    assert row[0]["initial_option"]["value"] == "in_order"
    assert [o["value"] for o in row[1]["options"]] == [ALICE.id, BOB.id]
    assert {o["value"] for o in row[2]["options"]} >= {"1", "50"}
    [ending] = [b for b in message.blocks if b["type"] == "input"]
    assert ending["optional"] is True and ending["element"]["type"] == "plain_text_input"
    assert "nothing to connect" in menu.menu(Catalog((), ()), "u", "/letta").text


def press(*ids: str, pattern: str | None = None, manager: str | None = None, turns: str | None = None,
          token: str | None = None) -> dict[str, Any]:
    """A Connect press, its state shaped as Slack sends it (static_select as in
    reference/slack/interactivity/block_actions_static_select.json, plain_text_input as in view_submission.json)."""
    row: dict[str, Any] = {}
    for action_id, value in ((menu.PICK_PATTERN, pattern), (menu.PICK_MANAGER, manager), (menu.PICK_MAX_TURNS, turns)):
        row[action_id] = {"type": "static_select", "selected_option": {"value": value} if value else None}
    values = {
        menu.AGENTS_BLOCK: {menu.PICK_AGENTS: {"selected_options": [{"value": i} for i in ids]}},
        menu.PATTERN_BLOCK: row,
        menu.ENDING_BLOCK: {menu.ENDING: {"type": "plain_text_input", "value": token}},
    }
    return {"actions": [{"action_id": menu.CONNECT_AGENTS}], "state": {"values": values}}


@pytest.mark.parametrize(
    ("body", "choice"),
    [
        (press(BOB.id, ALICE.id), Choice((BOB.id, ALICE.id), Pattern())),
        (press(BOB.id, ALICE.id, pattern="in_order"), Choice((BOB.id, ALICE.id), Pattern())),
        (press(ALICE.id, BOB.id, pattern="in_order", turns="3"),
         Choice((ALICE.id, BOB.id), Pattern("round_robin", max_turns=3))),
        (press(ALICE.id, pattern="supervisor", manager=BOSS), Choice((ALICE.id,), Pattern("supervisor", BOSS))),
        # The manager picked among the agents too manages the others.
        (press(ALICE.id, BOSS, BOB.id, pattern="dynamic", manager=BOSS, turns="4", token=" DONE! "),
         Choice((ALICE.id, BOB.id), Pattern("dynamic", BOSS, 4, "DONE!"))),
        (press(ALICE.id, BOB.id, pattern="broadcast"), Choice((ALICE.id, BOB.id), Pattern("broadcast"))),
        # A pick that does not go with the pattern is left out: a select once picked cannot be emptied.
        (press(ALICE.id, pattern="in_order", manager=BOSS), Choice((ALICE.id,), Pattern())),
        (press(ALICE.id, pattern="in_order", manager=BOSS, turns="3"),
         Choice((ALICE.id,), Pattern("round_robin", max_turns=3))),
        (press(ALICE.id, pattern="broadcast", manager=BOSS, turns="3"), Choice((ALICE.id,), Pattern("broadcast"))),
        (press(ALICE.id, pattern="supervisor", manager=BOSS, turns="3"),
         Choice((ALICE.id,), Pattern("supervisor", BOSS))),
        ({"actions": [{"action_id": menu.PICK_GROUP, "selected_option": {"value": G}}]}, Choice((G,))),
        ({"actions": [{"action_id": menu.SHOW_AGENTS}]}, Choice((), agents_menu=True)),
    ],
)
def test_a_press_is_read_as_ids_in_order_and_their_pattern(body: dict[str, Any], choice: Choice) -> None:
    assert menu.chosen(body) == choice


def test_a_press_that_cannot_be_bound_says_why() -> None:
    assert menu.chosen({}) == "Pick at least one agent first, then press Connect."
    assert menu.chosen(press()) == "Pick at least one agent first, then press Connect."
    assert menu.chosen(press(BOSS, pattern="supervisor", manager=BOSS)) == (
        "A supervisor group needs at least one agent besides its manager."
    )
    many = press(ALICE.id, pattern="dynamic", manager=BOSS, turns="many")
    assert menu.chosen(many) == "Pick max turns from the list."


@pytest.mark.parametrize("pattern", [None, "in_order", "supervisor", "broadcast"])
def test_a_termination_token_typed_for_a_pattern_without_one_is_refused_in_the_menus_words(pattern: str | None) -> None:
    """A text input can be cleared, unlike a select: the token is the person's own words, not a pick left behind, so
    it is refused rather than dropped unseen. Before: left out silently, the channel connected without it."""
    said = menu.chosen(press(ALICE.id, BOB.id, pattern=pattern, manager=BOSS, token="ALL DONE"))
    assert said == "A termination token goes with Dynamic only: clear it under Termination token, or choose Dynamic."


def test_a_managed_pattern_without_a_manager_is_told_to_choose_one_in_the_menu() -> None:
    """Said in the menu's words, not the typed `manager=<agent id>`; the manager may be one of the picked agents
    (it then manages the others), as the menu's hint says."""
    for name in menu.MANAGED:
        said = menu.chosen(press(ALICE.id, BOB.id, pattern=name, turns="3"))
        assert said == f"A {name} group needs a manager: choose one under Manager, one of the picked agents or another."
