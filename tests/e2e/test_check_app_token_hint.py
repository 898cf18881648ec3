"""`check` with a bot token pasted into SLACK_APP_TOKEN says to set it by hand, as `socket` does: `init` never asks
for that token."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import BOT_TOKEN, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def test_check_with_a_wrong_kind_of_app_token_does_not_send_the_operator_to_init(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", SLACK_APP_TOKEN=BOT_TOKEN)
        checked = run_cli(env, "check", cwd=tmp_path)
        socket = run_cli(env, "socket", cwd=tmp_path)
    assert checked.returncode == 2 and socket.returncode == 2
    assert "SLACK_APP_TOKEN is a bot token" in checked.stdout
    # `socket` says it right: init does not ask for SLACK_APP_TOKEN, set it by hand.
    assert "`python -m bridge init` does not ask for SLACK_APP_TOKEN" in socket.stderr
    # `check`, on the same settings, says the same, not to run init, which cannot fix it.
    assert "Run `python -m bridge init` to set them up" not in checked.stderr, checked.stderr
    assert "`python -m bridge init` does not ask for SLACK_APP_TOKEN" in checked.stderr, checked.stderr
