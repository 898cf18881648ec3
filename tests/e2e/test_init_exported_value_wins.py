"""An answer init writes over a value still exported (an old LETTA_API_KEY from an earlier try, a flag beside an
exported LETTA_BASE_URL) is not the one the bridge uses: the environment wins over config.toml. init ends by naming
each such variable and saying to unset it, never showing either value (they may be secrets)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, run_cli
from tests.e2e.test_init import LETTA_KEY, Terminal, bare_env, fakes  # noqa: F401  (fixture)
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

OLD_KEY = "an-old-revoked-key"


def test_init_says_to_unset_an_exported_key_its_retyped_answer_replaced(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path  # noqa: F811
) -> None:
    """The exported key fails its check, the right one is typed and written; init then says LETTA_API_KEY is
    exported with another value and to unset it, and `check` from that shell fails as it warned."""
    slack, letta = fakes
    env = bare_env(slack, tmp_path)
    env["LETTA_API_KEY"] = OLD_KEY  # still exported from an earlier try
    term = Terminal(env, tmp_path)
    term.answer("Public https URL", "https://bridge.acme.test/")
    term.answer("Slack bot token (xoxb-…): ", BOT_TOKEN)
    term.answer("Slack signing secret: ", SIGNING_SECRET)
    term.answer("Letta server URL", letta.base_url)
    term.expect("rejected the API key (HTTP 401)")
    term.answer("Letta API key (Enter for none): ", LETTA_KEY)
    code, screen = term.finish()
    assert code == 0, screen
    assert f'letta_api_key = "{LETTA_KEY}"' in (tmp_path / "config.toml").read_text()
    ending = screen.split("Wrote")[-1]
    assert (
        "LETTA_API_KEY is exported with another value, and the environment wins over config.toml: run "
        "`unset LETTA_API_KEY` (or export the new value) before starting." in " ".join(ending.split())
    ), ending
    assert OLD_KEY not in screen and LETTA_KEY not in screen, "a secret was shown"
    assert run_cli(env, "check", cwd=tmp_path).returncode == 1  # as init warned: the old key is still in force
    env.pop("LETTA_API_KEY")
    assert run_cli(env, "check", cwd=tmp_path).returncode == 0  # unset, the file's key is used


def test_init_names_an_exported_url_a_flag_replaced_and_not_one_that_agrees(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path  # noqa: F811
) -> None:
    """--letta-base-url writes the flag's URL while LETTA_BASE_URL holds another: init names LETTA_BASE_URL; the
    exported bot token, written as it is, is not named."""
    slack, letta = fakes
    env = bare_env(slack, tmp_path)
    env.update(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET, LETTA_API_KEY=LETTA_KEY)
    env["LETTA_BASE_URL"] = "http://127.0.0.1:9"
    done = run_cli(env, "init", "--non-interactive", "--letta-base-url", letta.base_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "LETTA_BASE_URL is exported with another value" in said and "unset LETTA_BASE_URL" in said, said
    assert "127.0.0.1:9" not in done.stdout
    for agreeing in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "LETTA_API_KEY"):
        assert f"{agreeing} is exported" not in said, said
