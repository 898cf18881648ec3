"""The bridge's own words name an agent as its replies show it (SLACK_AGENTS' display_name)."""

from __future__ import annotations

from bridge.slack.post import Look, SlackPoster


def test_the_notes_message_names_the_agent_as_its_reply_does() -> None:
    """An agent's reasoning/tool-call message: its text (Slack's notification and screen-reader text of a blocks
    message) says "alice: reasoning and tool calls" under a reply shown as "Alice (ops)"."""
    poster = SlackPoster(None, looks={"alice": Look(display_name="Alice (ops)")})  # type: ignore[arg-type]
    reply = poster.parts("alice", "hello")[0]
    assert reply.username == "Alice (ops)"
    (notes,) = poster.note_parts("alice", [["reasoning", "thinking about it"]])
    assert "Alice (ops)" in notes.text, notes.text
    assert not notes.text.startswith("alice"), notes.text


def test_a_failure_that_starts_with_the_agent_names_it_as_its_replies_show_it() -> None:
    """turn_asking posts `shown_words(failure.message)`; errors.py words a failure that begins a sentence with the
    agent as upper_first(agent.name) ("Alice is busy…", "Alice's model provider is rate-limiting it…"), which
    `words` no longer finds (it matches the Letta name 'alice' exactly): the thread, whose replies show
    'Research bot', is told 'Alice is busy'."""
    from bridge.letta.errors import Kind, LettaError

    poster = SlackPoster(None, looks={"alice": Look(display_name="Research bot")})  # type: ignore[arg-type]
    busy = LettaError(Kind.CONFLICT, "another request holds it", status=409).explain("alice")
    said = poster.shown_words(busy)
    assert "Research bot" in said, said
    assert "Alice" not in said, said
