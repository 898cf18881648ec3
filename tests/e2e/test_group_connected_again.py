"""a group connected again (from the terminal, or with /letta connect) is asked with the members the
connect just looked up and showed, not with the running bridge's record of the group read before."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.harness import base_env, run_cli
from tests.e2e.slash import slash_world
from tests.e2e.test_guarantees import rig


def test_a_group_connected_again_from_the_terminal_is_asked_with_the_members_the_terminal_showed(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path, "0.16.8", ("alice", "bob", "carol"))
    try:
        env = base_env(r.slack.api_url, r.letta.base_url, tmp_path / "bridge.db")
        first, _ = r.bridge.mention("first", r.channel)
        r.slack.wait_for(lambda: r.replies(first["ts"]) == ["alice", "bob", "carol"], 20)
        group = "group-" + run_cli(env, "channels", "list").stdout.split("group-")[1].split()[0]
        r.letta.set_group_members(group, [r.agents["alice"], r.agents["bob"]])  # carol removed on Letta
        again = run_cli(env, "channels", "connect", r.channel, group)
        assert again.returncode == 0, again.stderr
        assert "carol" not in again.stdout.split("replaced:")[0], again.stdout  # it shows alice and bob
        second, _ = r.bridge.mention("second", r.channel)
        r.slack.wait_for(lambda: len(r.replies(second["ts"])) >= 2, 20)
        time.sleep(2)
        assert r.replies(second["ts"]) == ["alice", "bob"], (again.stdout, r.replies(second["ts"]))
        # Added back and connected again: a binding saved as it once was is asked as the connect shows it too.
        r.letta.set_group_members(group, [r.agents[n] for n in ("alice", "bob", "carol")])
        back = run_cli(env, "channels", "connect", r.channel, group)
        assert back.returncode == 0, back.stderr
        assert "carol" in back.stdout.split("replaced:")[0], back.stdout  # it shows alice, bob and carol
        third, _ = r.bridge.mention("third", r.channel)
        r.slack.wait_for(lambda: len(r.replies(third["ts"])) >= 3, 20)
        time.sleep(2)
        assert r.replies(third["ts"]) == ["alice", "bob", "carol"], (back.stdout, r.replies(third["ts"]))
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


def test_a_group_connected_again_with_slash_letta_is_asked_with_the_members_the_answer_showed(tmp_path: Path) -> None:
    with slash_world(tmp_path) as w:
        ids = {n: w.letta.add_agent(n) for n in ("alice", "bob", "carol")}
        group = w.letta.add_group(list(ids.values()))
        assert "alice" in w.ask(f"connect {group}", "C0GUARD01")

        def names(ts: str) -> list[str]:
            return [p.args["username"] for p in w.slack.posts("C0GUARD01", ts) if p.args.get("username")]

        first, _ = w.bridge.mention("first", "C0GUARD01")
        w.slack.wait_for(lambda: names(first["ts"]) == ["alice", "bob", "carol"], 20)
        w.letta.set_group_members(group, [ids["alice"], ids["bob"]])  # carol removed on Letta
        said = w.ask(f"connect {group}", "C0GUARD01")
        assert "carol" not in said.split("This replaces")[0], said  # "Agents, in speaking order: alice, bob"
        second, _ = w.bridge.mention("second", "C0GUARD01")
        w.slack.wait_for(lambda: len(names(second["ts"])) >= 2, 20)
        time.sleep(2)
        assert names(second["ts"]) == ["alice", "bob"], (said, names(second["ts"]))
