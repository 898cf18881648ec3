"""The simplest complete app (bench/relay_app.py): each turn makes the floor's calls and posts every agent's reply.

It is a baseline the fan-out and acknowledgement figures are set against, so it must do the job it stands for:
the group's (or each agent's) reply, under that agent's name, in the mention's thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.relay_app import Relay
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


@pytest.fixture
def fakes(request: pytest.FixtureRequest) -> Iterator[tuple[FakeSlack, FakeLetta]]:
    slack, letta = FakeSlack(), FakeLetta(version=request.param)
    slack.start()
    letta.start()
    yield slack, letta
    slack.stop()
    letta.stop()


def _relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack: FakeSlack, letta: FakeLetta, runner: str) -> Relay:
    alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
    letta.set_reply(alice, "ship the fix")
    letta.set_reply(bob, "then the docs")
    group = letta.add_group([alice, bob])
    crews = tmp_path / "crews.json"
    crews.write_text(json.dumps({"C1": {"group": group, "agents": [[alice, "alice"], [bob, "bob"]]}}))
    for name, value in {
        "RELAY_CREWS": str(crews),
        "RELAY_RUNNER": runner,
        "SLACK_API_URL": slack.api_url,
        "LETTA_BASE_URL": letta.base_url,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
    }.items():
        monkeypatch.setenv(name, value)
    return Relay()


@pytest.mark.parametrize(("fakes", "runner"), [("0.11.7", "server"), ("0.16.8", "bridge")], indirect=["fakes"])
def test_each_agents_reply_is_posted_under_its_name_in_the_thread_a_channels_turns_in_order(
    fakes: tuple[FakeSlack, FakeLetta], runner: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack, letta = fakes
    relay = _relay(tmp_path, monkeypatch, slack, letta, runner)

    async def three_mentions() -> None:
        relay.start({"channel": "C1", "ts": "1700000000.000100", "text": "<@U0BOT> what first?"})
        relay.start({"channel": "C9", "ts": "1700000000.000200", "text": "a channel with no crew"})
        relay.start({"channel": "C1", "ts": "1700000000.000300", "text": "<@U0BOT> and then?"})
        assert len(relay.tasks) == 1, "one worker for C1's two turns, none for a channel with no crew"
        await asyncio.gather(*relay.tasks)
        await relay.close()

    asyncio.run(three_mentions())
    posts = [(c.args["thread_ts"][-3:], c.args["username"], c.args["text"]) for c in slack.posts("C1")]
    assert posts == [
        ("100", "alice", "ship the fix"),
        ("100", "bob", "then the docs"),
        ("300", "alice", "ship the fix"),
        ("300", "bob", "then the docs"),
    ]
    assert slack.posts("C9") == []
