"""The connect menu leaves out a pick that does not go with the pattern chosen: Slack's static_select has no empty
choice, so a manager picked for Supervisor and then In order or Broadcast chosen (or max turns, then Supervisor)
stayed picked, and Connect was refused for it with no way out but Cancel. The selects' labels say which patterns
each goes with; typed options stay the person's own words and are still refused (test_letta_connect_patterns)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.slash import Slash, button, pattern_state, slash_world


@pytest.fixture(scope="module")
def sw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slash]:
    with slash_world(tmp_path_factory.mktemp("menu_other_pattern")) as world:
        yield world


@pytest.mark.parametrize("pattern", ["in_order", "broadcast"])
def test_a_manager_left_picked_for_a_pattern_without_one_is_left_out(sw: Slash, pattern: str) -> None:
    """Picked Supervisor and a manager, then switched how they answer: the channel connects without the manager."""
    ann, ben, boss = (sw.letta.add_agent(f"{n}_{pattern}") for n in ("ann", "ben", "boss"))
    ch = f"C0{pattern.upper()[:6]}MP"
    sw.slack.add_channel(ch, ch.lower())
    state = pattern_state(ann, ben, pattern=pattern, manager=boss)
    post = sw.choose(ch, button("letta_connect_agents"), state=state).wait()
    assert "Connected this channel" in post["text"], post["text"]
    assert sw.pattern(ch) == (None if pattern == "in_order" else pattern, None, None, None)


def test_max_turns_left_picked_for_a_supervisor_is_left_out(sw: Slash) -> None:
    """Max turns go with In order and Dynamic: picked, then Supervisor chosen, they are not kept."""
    ann, ben, boss = (sw.letta.add_agent(f"{n}_sup") for n in ("ann", "ben", "boss"))
    ch = "C0SUPMTMP"
    sw.slack.add_channel(ch, ch.lower())
    state = pattern_state(ann, ben, pattern="supervisor", manager=boss, max_turns="3")
    post = sw.choose(ch, button("letta_connect_agents"), state=state).wait()
    assert "Connected this channel" in post["text"], post["text"]
    assert sw.pattern(ch) == ("supervisor", boss, None, None)
