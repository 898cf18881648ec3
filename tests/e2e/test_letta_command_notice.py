"""The channel notice of a `/letta connect` or `disconnect` whose answer Slack lost: the change is saved, and the
answer says so, with the notice's outcome unknown (commands.py `_announce`), never "an unexpected error"."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.slash import slash_world


def test_a_channel_notice_whose_answer_slack_lost_is_said_as_unknown_not_as_an_error(tmp_path: Path) -> None:
    with slash_world(tmp_path) as sw:
        alice, channel = sw.letta.add_agent("alice"), "C0NOTICE1"
        sw.slack.add_channel(channel, "notice")
        sw.slack.land_then_drop_next("chat.postMessage")
        said = sw.ask(f"connect {alice}", channel)
        assert sw.binding(channel) is not None and sw.notices(channel)  # saved, and the notice landed
        assert "Connected this channel" in said and "may not have been told" in said, said
        assert "unexpected error" not in said
        sw.slack.land_then_drop_next("chat.postMessage")
        said = sw.ask("disconnect", channel)
        assert sw.binding(channel) is None and "may not have been told" in said, said
