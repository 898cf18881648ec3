"""An agent that says the same words twice in one thread ("Done."), the bridge killed before the second reply
was posted: the restarted bridge reads the thread to see whether that post landed unrecorded, and must not take
the first reply, recorded as its own turn's, for it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.conftest import backend_env
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


@pytest.mark.slow  # kill -9 mid-turn: .ci/run's slow stage
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_reply_in_the_same_words_as_an_earlier_one_is_still_posted_after_a_crash(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        letta.set_reply(alice, "Done.")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", **backend_env(request, backend))
        assert run_cli(env, "channels", "connect", "C0WORDS01", alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            letta.set_delay(alice, 1.5)
            first, _ = bridge.mention("do it", "C0WORDS01")
            second, _ = bridge.mention("and again", "C0WORDS01", thread_ts=first["ts"])  # waits behind the first

            def replies() -> list[str]:
                return [p.args["text"] for p in slack.posts("C0WORDS01", first["ts"]) if p.args.get("username")]

            slack.wait_for(lambda: replies() == ["Done."], 10)
            letta.wait_for(lambda: len(letta.inputs) == 2, 10)  # alice answers the second mention
            bridge.kill()
            bridge.restart()
            slack.wait_for(lambda: "white_check_mark" in slack.reactions("C0WORDS01", second["ts"]), 20)
            time.sleep(0.3)
            assert len(letta.inputs) == 2
            assert replies() == ["Done.", "Done."], "the second reply was taken for the first one and never posted"
        finally:
            bridge.stop()
