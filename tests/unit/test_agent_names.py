"""The bridge's own words name an agent as its replies show it (SLACK_AGENTS' display_name), whole names only."""

from __future__ import annotations

from bridge.slack.agent_names import ShownNames
from bridge.slack.feedback import feedback_actions
from bridge.slack.post import Look, SlackPoster


def test_only_whole_names_with_a_display_name_are_changed_longest_first() -> None:
    shown = ShownNames({"ann": "Ann (ops)", "anna": "Anna (research)", "bob": None, "carl": "carl", "a.b": "A+B"})
    text = "ann and anna failed; bob, carl and annabel not asked; a.b ran, axb did not; ann-2 is another agent."
    assert shown.words(text) == (
        "Ann (ops) and Anna (research) failed; bob, carl and annabel not asked; A+B ran, axb did not; "
        "ann-2 is another agent."
    )
    assert shown.name("anna") == "Anna (research)" and shown.name("bob") == "bob"
    assert ShownNames({}).words("ann sent an empty reply.") == "ann sent an empty reply."


def test_a_notice_is_named_before_it_is_escaped_and_a_reply_keeps_its_words() -> None:
    poster = SlackPoster(None, looks={"alice": Look(display_name="Alice <R&D>")})  # type: ignore[arg-type]
    assert poster.parts(None, "alice sent an empty reply.")[0].text == "Alice &lt;R&amp;D&gt; sent an empty reply."
    reply = poster.parts("alice", "alice here")[0]
    assert reply.username == "Alice <R&D>" and "alice here" in reply.text


def test_feedback_buttons_read_the_shown_name_and_carry_the_letta_name() -> None:
    (block,) = feedback_actions(7, "agent-1:0", "alice", "Alice (research)")
    buttons = block["elements"][0]
    assert buttons["positive_button"]["accessibility_label"] == "Good reply from Alice (research)"
    assert buttons["negative_button"]["value"].endswith("|alice")
