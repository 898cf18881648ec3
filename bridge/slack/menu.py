"""Pure: the /letta connect menu (Block Kit) and reading what was chosen in it.

Where the server has groups, the menu offers them and a way to pick agents instead; otherwise (the App Server,
Letta Cloud) it offers the agents at once. Agents are picked in speaking order with how they answer (in order,
supervisor, dynamic, broadcast), a manager, max turns and a termination token: a bridge-defined group, checked by
the same rules as `channels connect`'s flags (`bridge.targets.with_pattern`) before anything is saved, after
leaving out the picks the chosen pattern does not take (a select cannot be emptied once picked); a termination
token typed for another pattern than dynamic is refused, since a text input can be cleared.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from bridge.domain import BROADCAST, Catalog, Pattern, Target
from bridge.slack.blocks import AGENT_ID, GROUP_ID, Message, clip, led_by

# Action ids of the menu; the listener registers a handler for each.
PICK_GROUP = "letta_connect_group"
PICK_AGENTS = "letta_pick_agents"
PICK_PATTERN = "letta_pick_pattern"
PICK_MANAGER = "letta_pick_manager"
PICK_MAX_TURNS = "letta_pick_max_turns"
ENDING = "letta_termination"
CONNECT_AGENTS = "letta_connect_agents"
SHOW_AGENTS = "letta_show_agents"
CANCEL = "letta_cancel"
# Selects whose choice is only read from the menu's state when Connect is pressed.
SELECTS = (PICK_AGENTS, PICK_PATTERN, PICK_MANAGER, PICK_MAX_TURNS)
AGENTS_BLOCK = "letta_agents_block"
PATTERN_BLOCK = "letta_pattern_block"
ENDING_BLOCK = "letta_termination_block"

OPTIONS_MAX = 100  # static_select and multi_static_select
OPTION_TEXT_MAX = 75
IN_ORDER = "in_order"  # a plain list of agents, unless max turns make it round robin
PATTERN_CHOICES: dict[str, str] = {
    IN_ORDER: "In order (round robin)",
    "supervisor": "Supervisor: agents first, manager last",
    "dynamic": "Dynamic: the manager picks who speaks",
    BROADCAST: "Broadcast: everyone at once",
}
MAX_TURNS_CHOICES = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 40, 50)
MANAGED = ("supervisor", "dynamic")
TURNS_WITH = (None, IN_ORDER, "dynamic")  # max turns: a round robin's sends in all, a dynamic group's limit
HOW = (
    "*In order*: each agent once, or max turns in all, wrapping around. *Supervisor*: the agents answer, then the "
    "manager. *Dynamic*: the manager picks who speaks next, up to max turns, until it says the termination token. "
    "*Broadcast*: every agent at once. The manager may be one of the picked agents or another."
)


@dataclass(frozen=True)
class Choice:
    """What a press asks for: the ids to bind and, for agents, their pattern; or the agent picker instead of the
    groups (`agents_menu`, no ids)."""

    ids: tuple[str, ...]
    pattern: Pattern | None = None
    agents_menu: bool = False


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, OPTION_TEXT_MAX) or "-", "emoji": True}


def _option(text: str, value: str, description: str = "") -> dict[str, Any]:
    option: dict[str, Any] = {"text": _plain(text), "value": value}
    if description:
        option["description"] = _plain(description)
    return option


def _labels(named: list[tuple[str, str]]) -> list[str]:
    """Each (name, id)'s option text: the name, or, where clipped names coincide, the name with its id's tail,
    since a picked option shows only its text (its description, the id, is gone from the chip)."""
    clipped = [clip(name, OPTION_TEXT_MAX) for name, _ in named]
    seen = Counter(c.casefold() for c in clipped)
    labels = []
    for (name, value), short in zip(named, clipped, strict=True):
        if seen[short.casefold()] > 1:
            tail = f"(…{value[-6:]})"
            short = f"{clip(name, OPTION_TEXT_MAX - len(tail) - 1)} {tail}".lstrip()
        labels.append(short)
    return labels


def _group_options(groups: tuple[Target, ...]) -> list[dict[str, Any]]:
    named = [(t.description or t.group_id or "group", str(t.group_id)) for t in groups[:OPTIONS_MAX]]
    options = []
    for t, label in zip(groups, _labels(named), strict=False):
        who = "; ".join(filter(None, [led_by(t), ", ".join(a.name for a in t.agents) or "no agents"]))
        options.append(_option(label, str(t.group_id), f"{t.manager_type or '?'}: {who}"))
    return options


def _button(text: str, action_id: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "text": _plain(text), "action_id": action_id, "value": action_id}
    if style:
        button["style"] = style
    return button


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _select(kind: str, action_id: str, placeholder: str, options: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": kind, "action_id": action_id, "placeholder": _plain(placeholder), "options": options[:OPTIONS_MAX]}


def _agent_form(catalog: Catalog) -> list[dict[str, Any]]:
    """Agents in speaking order, their pattern, manager and limits, then Connect."""
    listed = catalog.agents[:OPTIONS_MAX]
    agents = [
        _option(label, a.id, a.id) for a, label in zip(listed, _labels([(a.name, a.id) for a in listed]), strict=True)
    ]
    patterns = [_option(label, value) for value, label in PATTERN_CHOICES.items()]
    pattern = _select("static_select", PICK_PATTERN, "How they answer", patterns)
    pattern["initial_option"] = patterns[0]
    turns = [_option(str(n), str(n)) for n in MAX_TURNS_CHOICES]
    token = {"type": "plain_text_input", "action_id": ENDING, "max_length": 100, "placeholder": _plain("DONE!")}
    buttons = [_button("Connect", CONNECT_AGENTS, "primary"), _button("Cancel", CANCEL)]
    return [
        {
            "type": "actions",
            "block_id": AGENTS_BLOCK,
            "elements": [_select("multi_static_select", PICK_AGENTS, "Choose agents", agents)],
        },
        {
            "type": "actions",
            "block_id": PATTERN_BLOCK,
            "elements": [
                pattern,
                _select("static_select", PICK_MANAGER, "Manager (supervisor, dynamic)", agents),
                _select("static_select", PICK_MAX_TURNS, "Max turns (in order, dynamic)", turns),
            ],
        },
        {
            "type": "input",
            "block_id": ENDING_BLOCK,
            "optional": True,
            "label": _plain("Termination token (dynamic, optional)"),
            "element": token,
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": HOW}]},
        {"type": "actions", "block_id": "letta_agents_buttons", "elements": buttons},
    ]


def menu(catalog: Catalog, url: str, command: str, agents: bool = False) -> Message:
    """The ephemeral picker for `connect` without ids: the groups (and a way to pick agents instead), or, where the
    server has no groups or `agents` asks for it, the agents and how they answer."""
    groups = () if agents else catalog.groups or ()
    if not groups and not catalog.agents:
        return Message(f"The Letta server at {url} has no groups or agents yet, so there is nothing to connect.")
    if groups:
        fallback, shown, complete = "Choose a Letta group for this channel", len(groups), catalog.groups_complete
        what = f"{GROUP_ID}` connects any group"
        select = _select("static_select", PICK_GROUP, "Choose a group", _group_options(groups))
        buttons = [_button("Pick agents instead", SHOW_AGENTS)] if catalog.agents else []
        elements = [select, *buttons, _button("Cancel", CANCEL)]
        blocks = [
            _section(f"Choose the Letta group this channel talks to (server {url}):"),
            {"type": "actions", "block_id": "letta_group_block", "elements": elements},
        ]
    else:
        fallback, shown, complete = "Choose Letta agents for this channel", len(catalog.agents), catalog.agents_complete
        what = f"{AGENT_ID} …` any agents"
        why = " has no group routes." if catalog.groups is None else "" if catalog.groups else " has no groups."
        blocks = [
            _section(
                f"The Letta server at {url}{why} Pick agents in the order they should speak and how they answer, "
                "then *Connect*:"
            ),
            *_agent_form(catalog),
        ]
    if shown > OPTIONS_MAX or not complete:
        more = f"Only the first {OPTIONS_MAX} are listed; `{command} connect {what}."
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return Message(fallback, blocks)


def chosen(body: dict[str, Any]) -> Choice | str:
    """What a menu action asks for: the group picked, the agent picker, or the agents selected (with their pattern)
    when Connect was pressed; a sentence when the choice cannot be bound as it stands."""
    action = (body.get("actions") or [{}])[0]
    if action.get("action_id") == SHOW_AGENTS:
        return Choice((), agents_menu=True)
    if action.get("action_id") == PICK_GROUP:
        value = (action.get("selected_option") or {}).get("value")
        return Choice((str(value),)) if value else "Pick a group first."
    ids = picked_agents(body)
    if not ids:
        return "Pick at least one agent first, then press Connect."
    values = (body.get("state") or {}).get("values") or {}
    row = values.get(PATTERN_BLOCK) or {}
    name, manager, turns = (_picked(row, a) for a in (PICK_PATTERN, PICK_MANAGER, PICK_MAX_TURNS))
    token = str(((values.get(ENDING_BLOCK) or {}).get(ENDING) or {}).get("value") or "").strip() or None
    if token and name != "dynamic":  # typed, and a text input can be cleared: the person's words, not left out
        return "A termination token goes with Dynamic only: clear it under Termination token, or choose Dynamic."
    # A select once picked cannot be emptied: a pick the chosen pattern does not take (its label says which do)
    # is left behind from another pattern, not asked for, and refusing it would leave only Cancel.
    manager = manager if name in MANAGED else None
    turns = turns if name in TURNS_WITH else None
    if name in MANAGED and not manager:
        return f"A {name} group needs a manager: choose one under Manager, one of the picked agents or another."
    if name in MANAGED and manager in ids:
        ids = [i for i in ids if i != manager]  # the manager picked among the agents too: it manages them
        if not ids:
            return f"A {name} group needs at least one agent besides its manager."
    if name in (None, IN_ORDER):
        name = "round_robin" if turns else None
    max_turns = int(turns) if turns and turns.isdigit() else None
    if turns and max_turns is None:
        return "Pick max turns from the list."
    return Choice(tuple(ids), Pattern(name, manager, max_turns, token))


def _picked(row: dict[str, Any], action_id: str) -> str | None:
    value = ((row.get(action_id) or {}).get("selected_option") or {}).get("value")
    return str(value) if value else None


def picked_agents(body: dict[str, Any]) -> list[str]:
    """The agent ids chosen in the menu's multi-select, in the order Slack lists them (the order picked)."""
    values = ((body.get("state") or {}).get("values") or {}).get(AGENTS_BLOCK) or {}
    picked = (values.get(PICK_AGENTS) or {}).get("selected_options") or []
    return [str(o.get("value")) for o in picked if isinstance(o, dict) and o.get("value")]
