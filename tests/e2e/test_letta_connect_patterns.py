"""/letta connect gives a list of agents a pattern (a bridge-defined group, issue 15), from the menu or typed, on
the fake Letta 0.16.8 and the fake App Server: the same rules as `channels connect --pattern`, checked before
anything is saved; a bad choice is refused in plain words and saves nothing."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.e2e.slash import ADMIN, Slash, agents_state, button, pattern_state, slash_world
from tests.fakes.letta import FakeLetta

_channels = itertools.count(1)
SERVERS = ("0.16.8", "app-server")


def missing_agent(sw: Slash) -> str:
    local = "-local" if sw.env["LETTA_BASE_URL"].startswith("ws") else ""
    return f"agent{local}-00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module", params=SERVERS)
def sw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slash]:
    with slash_world(tmp_path_factory.mktemp("menupattern"), request.param, TURN_DEADLINE_SECONDS="30") as world:
        yield world


def channel(sw: Slash) -> str:
    ch = f"C{next(_channels):04d}MENUP"
    sw.slack.add_channel(ch, ch.lower())
    return ch


def crew(sw: Slash, *names: str) -> list[tuple[str, str]]:
    """New agents (id, name), named uniquely in the module's server."""
    made = [f"{n}{next(_channels)}" for n in names]
    return [(sw.letta.add_agent(n), n) for n in made]


def names_said(sw: Slash, ch: str, ts: str, count: int) -> list[str]:
    sw.slack.wait_for(lambda: len(sw.slack.posts(ch, ts)) >= count, 20)
    return [str(p.args.get("username", "")) for p in sw.slack.posts(ch, ts)]


def test_the_menu_picks_agents_then_a_supervisor_and_a_mention_plays_it(sw: Slash) -> None:
    (ann, _), (ben, _), (boss, boss_name) = crew(sw, "ann", "ben", "boss")
    ch = channel(sw)
    if isinstance(sw.letta, FakeLetta):
        # 0.16.8 keeps groups: the menu offers them, and the agents instead.
        sw.letta.add_group([ann, ben], manager_type="round_robin", description="old crew")
    menu = sw.send("connect", ch).wait()
    if isinstance(sw.letta, FakeLetta):
        ids = [e["action_id"] for b in menu["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert ids == ["letta_connect_group", "letta_show_agents", "letta_cancel"]
        menu = sw.choose(ch, button("letta_show_agents")).wait()
        assert menu["replace_original"] is True
    row = next(b for b in menu["blocks"] if b.get("block_id") == "letta_pattern_block")["elements"]
    assert [o["value"] for o in row[0]["options"]] == ["in_order", "supervisor", "dynamic", "broadcast"]
    assert boss in [o["value"] for o in row[1]["options"]]
    # The manager picked among the agents too: it manages the others.
    state = pattern_state(ann, boss, ben, pattern="supervisor", manager=boss)
    post = sw.choose(ch, button("letta_connect_agents"), state=state).wait()
    assert post["replace_original"] is True and "Connected this channel to a list of agents" in post["text"]
    assert f"Pattern: `supervisor`, manager {boss_name}" in post["text"], post["text"]
    assert sw.pattern(ch) == ("supervisor", boss, None, None)
    assert f"pattern `supervisor`, manager {boss_name}" in sw.ask("status", ch)
    event, _ = sw.bridge.mention("plan the week", ch)
    said = names_said(sw, ch, str(event["ts"]), 3)
    assert said[-1] == boss_name and sorted(said[:2]) == sorted(n for n in said if n != boss_name)


def test_typed_options_bind_a_dynamic_group(sw: Slash) -> None:
    [jo, kit, dee] = [i for i, _ in crew(sw, "jo", "kit", "dee")]
    ch = channel(sw)
    answer = sw.ask(f"connect {jo} {kit} pattern=dynamic manager={dee} max_turns=4 token=DONE!", ch)
    assert "Pattern: `dynamic`" in answer and "max turns 4, termination token DONE!" in answer, answer
    assert sw.pattern(ch) == ("dynamic", dee, 4, "DONE!")
    state = pattern_state(jo, kit, pattern="in_order", max_turns="3")
    post = sw.choose(ch, button("letta_connect_agents"), state=state).wait()
    assert "Pattern: `round_robin`, max turns 3" in post["text"] and "This replaces" in post["text"]
    assert sw.pattern(ch) == ("round_robin", None, 3, None)


def test_bad_choices_are_refused_plainly_and_save_nothing(sw: Slash) -> None:
    """Each typed refusal names the option as typed (`max_turns=`), in code: a sentence's capital made it
    "Max_turns"; the menu's refusals name its own controls."""
    [lu, mo, ned] = [i for i, _ in crew(sw, "lu", "mo", "ned")]
    gone = missing_agent(sw)
    ch = channel(sw)
    pressed = {  # said in the menu's words: a pick that does not go with the pattern is left out, not refused
        "A supervisor group needs a manager: choose one under Manager, one of the picked agents or another.":
            pattern_state(lu, mo, pattern="supervisor", max_turns="2"),
        f"Agent {gone} was not found on the Letta server":
            pattern_state(lu, mo, pattern="dynamic", manager=gone),
        "A dynamic group needs at least one agent besides its manager.":
            pattern_state(ned, pattern="dynamic", manager=ned),
        "Pick at least one agent first": pattern_state(pattern="supervisor", manager=ned),
        # Typed, unlike a pick: a text input can be cleared, so it is refused, not left out unseen.
        "A termination token goes with Dynamic only: clear it under Termination token, or choose Dynamic.":
            pattern_state(lu, mo, pattern="broadcast", token="ALL DONE"),
    }
    for said, state in pressed.items():
        post = sw.choose(ch, button("letta_connect_agents"), state=state).wait()
        assert said in post["text"] and "Nothing was changed." in post["text"], (said, post["text"])
        # Answered beside the menu, which stays with what was picked, to be put right.
        assert post["replace_original"] is False, (said, post)
    typed = {
        f"connect {lu} {mo} pattern=supervisor": "A supervisor group needs a manager: `manager=&lt;agent id&gt;`",
        f"connect {lu} {mo} pattern=supervisor manager={gone}": f"Agent {gone} was not found",
        f"connect {lu} {mo} pattern=dynamic manager={lu}": "The manager is listed among the agents too; name it",
        f"connect {lu} {mo} pattern=round_robin max_turns=51": "`max_turns` is a number from 1 to 50.",
        f"connect {lu} {mo} pattern=chaos": "`chaos` is not a pattern: use one of round_robin, supervisor, dynamic",
        f"connect {lu} manager={ned}": "`manager`, `max_turns` and `termination_token` go with a pattern.",
    }
    for text, said in typed.items():
        answer = sw.ask(text, ch)
        assert said in answer and "Nothing was changed." in answer, (text, answer)
    assert sw.binding(ch) is None and sw.notices(ch) == []
    # The menu's plain agent list still binds agents in order, with no pattern.
    post = sw.choose(ch, button("letta_connect_agents"), state=agents_state(mo, lu)).wait()
    assert "Connected this channel to a list of agents" in post["text"] and "Pattern" not in post["text"]
    assert sw.pattern(ch) == (None, None, None, None)
    bound = sw.binding(ch)
    assert bound is not None and bound[0] == "agents" and bound[2] == ADMIN


def test_a_group_id_where_there_are_no_groups_is_told_the_agent_id_form_this_server_takes(sw: Slash) -> None:
    """The App Server has no groups: its hint named `agent-<uuid>`, a form the same server then refuses (its agents
    are agent-local-<uuid>)."""
    group = "group-3a30ad74-0ed7-464d-b24f-605684f0d67f"
    said = sw.ask(f"connect {group}", channel(sw))
    if sw.env["LETTA_BASE_URL"].startswith("ws"):
        assert "in speaking order: agent-local-&lt;uuid&gt; agent-local-&lt;uuid&gt;" in said, said
    else:  # a REST server has groups: this one is not among them
        assert f"{group} was not found" in said, said
