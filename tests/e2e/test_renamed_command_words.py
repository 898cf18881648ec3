"""With the command renamed (SLACK_COMMAND=/crew), a refusal that points the person to a listing names the command
they have, not `/letta` (which this workspace does not have, or which is another app's). Seen against a real Letta
0.16.8 too: an id whose uuid is not v4 is refused with 422, and the answer said `/letta agents`."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.slash import slash_world


def test_an_id_letta_refuses_points_to_the_renamed_commands_listing(tmp_path: Path) -> None:
    """Both kinds: the agent list and the group list are named by `/crew`."""
    with slash_world(tmp_path, SLACK_COMMAND="/crew") as world:
        for kind in ("agent", "group"):
            typed = f"{kind}-00000000-0000-0000-0000-000000000000"  # a uuid, but not a v4 one: 422 on 0.16.x
            answer = world.send(f"connect {typed}", "C0RENAMED", command="/crew").text
            assert "Nothing was changed." in answer, answer
            assert "/letta" not in answer and f"`/crew {kind}s`" in answer, answer
