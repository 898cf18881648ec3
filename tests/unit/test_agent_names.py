"""The bridge's own words name an agent as its replies show it (SLACK_AGENTS' display_name): where the bridge words
a notice, by the name; in a failure the Letta side worded, only where the name stands as a word of a sentence."""

from __future__ import annotations

from bridge.slack.agent_names import ShownNames
from bridge.slack.feedback import feedback_actions
from bridge.slack.post import Look, SlackPoster
from bridge.turn_words import UNBOUND


def test_whole_names_with_a_display_name_are_changed_longest_first() -> None:
    shown = ShownNames({"ann": "Ann (ops)", "anna": "Anna (research)", "bob": None, "carl": "carl", "a.b": "A+B"})
    text = "ann and anna failed; bob, carl and annabel not asked; a.b ran, axb did not; ann-2 is another agent."
    assert shown.words(text) == (
        "Ann (ops) and Anna (research) failed; bob, carl and annabel not asked; A+B ran, axb did not; "
        "ann-2 is another agent."
    )
    assert shown.words("The connection dropped while ann was answering. ann's reply: (ann) ann.") == (
        "The connection dropped while Ann (ops) was answering. Ann (ops)'s reply: (Ann (ops)) Ann (ops)."
    )
    assert shown.name("anna") == "Anna (research)" and shown.name("bob") == "bob"
    assert ShownNames({}).words("ann sent an empty reply.") == "ann sent an empty reply."


def test_a_name_in_a_command_an_address_or_code_is_left_as_it_is() -> None:
    shown = ShownNames({"letta": "Letta (ops)"})
    unbound = UNBOUND.format(who="An admin", command="/letta")
    assert shown.words(unbound) == unbound
    for text in (
        "I couldn't reach the Letta server at http://letta:8283. Check that it is running.",
        "letta.example.com refused; see ``letta`` and `call letta now`; mail letta@example.com; #letta; <@letta>",
    ):
        assert shown.words(text) == text
    assert shown.words("letta: waiting for `letta` to decide") == "Letta (ops): waiting for `letta` to decide"


def test_a_notice_is_posted_as_worded_and_a_reply_under_the_shown_name() -> None:
    poster = SlackPoster(None, looks={"alice": Look(display_name="Alice <R&D>")})  # type: ignore[arg-type]
    assert poster.parts(None, "`/alice connect`")[0].text == "`/alice connect`"
    assert poster.shown_words("alice failed.") == "Alice <R&D> failed."
    reply = poster.parts("alice", "alice here")[0]
    assert reply.username == "Alice <R&D>" and "alice here" in reply.text


def test_feedback_buttons_read_the_shown_name_and_carry_the_letta_name() -> None:
    (block,) = feedback_actions(7, "agent-1:0", "alice", "Alice (research)")
    buttons = block["elements"][0]
    assert buttons["positive_button"]["accessibility_label"] == "Good reply from Alice (research)"
    assert buttons["negative_button"]["value"].endswith("|alice")


def test_a_name_capitalised_at_a_sentence_start_is_the_agent_there_only() -> None:
    shown = ShownNames({"alice": "research bot", "letta": "Letta (ops)"})
    assert shown.words("Alice is busy. Then Alice left; alice's turn. Letta failed while letta was answering.") == (
        "Research bot is busy. Then Alice left; research bot's turn. Letta failed while Letta (ops) was answering."
    )
