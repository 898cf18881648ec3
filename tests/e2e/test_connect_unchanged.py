"""revCY: a member added back on Letta, and the channel connected again by the same person: the connect answers
"connected to this already, so nothing changed" listing the member, yet the running bridge keeps playing the group
record read before (without that member) for up to five minutes: an unchanged connect saves nothing, so the
binding's bound_at stays older than the record (letta/groups.py _saved_after)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.slash import slash_world


def test_a_member_added_back_is_asked_after_an_unchanged_connect(tmp_path: Path) -> None:
    with slash_world(tmp_path) as w:
        ids = {n: w.letta.add_agent(n) for n in ("alice", "bob", "carol")}
        group = w.letta.add_group(list(ids.values()))
        assert "carol" in w.ask(f"connect {group}", "C0GUARD01")

        def names(channel: str, ts: str) -> list[str]:
            return [p.args["username"] for p in w.slack.posts(channel, ts) if p.args.get("username")]

        first, _ = w.bridge.mention("first", "C0GUARD01")
        w.slack.wait_for(lambda: names("C0GUARD01", first["ts"]) == ["alice", "bob", "carol"], 20)
        w.letta.set_group_members(group, [ids["alice"], ids["bob"]])  # carol removed on Letta
        # Another channel connected to the group: its turn reads the group's record again (alice, bob).
        assert "carol" not in w.ask(f"connect {group}", "C0GUARD02").split("This replaces")[0]
        other, _ = w.bridge.mention("other", "C0GUARD02")
        w.slack.wait_for(lambda: len(names("C0GUARD02", other["ts"])) >= 2, 20)
        time.sleep(2)
        assert names("C0GUARD02", other["ts"]) == ["alice", "bob"]
        # carol added back on Letta; the first channel connected again by the same admin: the answer shows carol.
        w.letta.set_group_members(group, [ids[n] for n in ("alice", "bob", "carol")])
        said = w.ask(f"connect {group}", "C0GUARD01")
        assert "carol" in said, said
        again, _ = w.bridge.mention("again", "C0GUARD01")
        w.slack.wait_for(lambda: len(names("C0GUARD01", again["ts"])) >= 2, 20)
        time.sleep(2)
        assert names("C0GUARD01", again["ts"]) == ["alice", "bob", "carol"], (said, names("C0GUARD01", again["ts"]))
