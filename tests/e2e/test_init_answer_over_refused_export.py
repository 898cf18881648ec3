"""An exported setting the bridge would refuse does not stop init when init asks about it (the bot token, the
signing secret, the Letta URL and key): the flag or the answer wins, as it is what init writes, and init ends by
naming the exported variable to unset. One init does not ask about (the runner, the conversations…) stops it at once,
in words that say it is exported and how to unset it. (Taken over from the second reader secKF.)"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, run_cli
from tests.e2e.test_init import LETTA_KEY, Terminal, bare_env, fakes  # noqa: F401  (fixture)
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def test_a_flag_replacing_an_exported_url_without_a_scheme_is_written_and_the_variable_named(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path  # noqa: F811
) -> None:
    """LETTA_BASE_URL=localhost:8283 exported (no scheme) and --letta-base-url given: init checks and writes the
    flag's URL and ends by saying to unset LETTA_BASE_URL."""
    slack, letta = fakes
    env = bare_env(slack, tmp_path)
    env.update(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET, LETTA_API_KEY=LETTA_KEY)
    env["LETTA_BASE_URL"] = "localhost:8283"  # the usual slip: no scheme
    done = run_cli(env, "init", "--non-interactive", "--letta-base-url", letta.base_url, cwd=tmp_path)
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 0, said
    assert f'letta_base_url = "{letta.base_url}"' in (tmp_path / "config.toml").read_text()
    assert "LETTA_BASE_URL is exported with another value" in said and "unset LETTA_BASE_URL" in said, said


def test_init_asks_again_for_an_exported_url_without_a_scheme(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path  # noqa: F811
) -> None:
    """In a terminal, the exported URL without a scheme fails its check at the URL's question, which is asked
    again; the answer is written and LETTA_BASE_URL named to unset."""
    slack, letta = fakes
    env = bare_env(slack, tmp_path)
    env["LETTA_BASE_URL"] = "localhost:8283"
    term = Terminal(env, tmp_path)
    term.answer("Public https URL", "https://bridge.acme.test/")
    term.answer("Slack bot token (xoxb-…): ", BOT_TOKEN)
    term.answer("Slack signing secret: ", SIGNING_SECRET)
    term.expect("no scheme")
    term.answer("Letta server URL", letta.base_url)
    term.answer("Letta API key (Enter for none): ", LETTA_KEY)
    code, screen = term.finish()
    assert code == 0, screen
    assert "unset LETTA_BASE_URL" in " ".join(screen.split()), screen


def test_an_exported_setting_init_does_not_ask_about_and_the_bridge_refuses_stops_init_saying_it_is_exported(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path  # noqa: F811
) -> None:
    """LETTA_GROUP_RUNNER=bogus exported: init stops before asking (exit 2, nothing written), naming the variable as
    exported and the `unset` that clears it."""
    slack, letta = fakes
    env = bare_env(slack, tmp_path)
    env.update(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET, LETTA_API_KEY=LETTA_KEY)
    env["LETTA_GROUP_RUNNER"] = "bogus"
    done = run_cli(env, "init", "--non-interactive", "--letta-base-url", letta.base_url, cwd=tmp_path)
    said = " ".join(done.stderr.split())
    assert done.returncode == 2, said
    assert not (tmp_path / "config.toml").exists()
    assert "LETTA_GROUP_RUNNER must be one of" in said, said
    assert "LETTA_GROUP_RUNNER is exported" in said and "`unset LETTA_GROUP_RUNNER`" in said, said
    assert "Nothing was written." in said, said
