"""revBC: the connect answer's last line promises "each agent answers" for a round robin whose max_turns is fewer
than its members (docs/patterns.md: round robin, bridge runner: "the members in order, `max_turns` sends in
all"). 0e7283f reworded that line per pattern (sleeptime, dynamic) but not for max_turns."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.slash import slash_world


def test_round_robin_with_one_turn_does_not_promise_every_agent_answers(tmp_path: Path) -> None:
    with slash_world(tmp_path, version="0.16.8") as sw:
        a, b = sw.letta.add_agent("alice"), sw.letta.add_agent("bob")
        ch = "C0RRMAX01"
        said = sw.ask(f"connect {a} {b} pattern=round_robin max_turns=1", ch)
        assert "Connected this channel" in said, said
        event, _ = sw.bridge.mention("who is there?", ch)
        sw.slack.wait_for(lambda: len(sw.slack.posts(ch, str(event["ts"]))) >= 1, 20)
        time.sleep(2)  # bob would have answered by now
        answered = [str(p.args.get("username", "")) for p in sw.slack.posts(ch, str(event["ts"]))]
        assert answered == ["alice"], answered  # one send in all: bob is never asked
        # ...yet the channel was told both would answer.
        assert "each agent answers" not in said, said
