"""Logging set-up: what the libraries are left to write, and what they are left to format."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.cli import _say_error
from bridge.logs import QUIETER, setup_logging, shown_url
from bridge.slack.metered import MeteredSlackClient
from tests.fakes.slack import FakeSlack


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in QUIETER}  # setup_logging sets each of them
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_slack_sdk_formats_no_debug_text_for_a_web_api_call(level: str, restored_logging: None) -> None:
    """slack_sdk checks its client logger's own level before it builds each request's and response's debug text
    (headers and body); those lines are never written (logs.QUIETER), so they must not be built either."""
    setup_logging(level, "text", [])
    slack = FakeSlack()
    slack.start()
    debug_calls: list[Any] = []
    try:
        client = MeteredSlackClient(token="xoxb-test-token", base_url=slack.api_url)
        client._logger.debug = lambda *args, **kwargs: debug_calls.append(args)  # type: ignore[method-assign]
        asyncio.run(client.auth_test())
    finally:
        slack.stop()
    assert debug_calls == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://lettauser:p@ss-s3cret@letta:8283", "http://***@letta:8283"),
        ("https://u:pw@letta.example/v1/?next=a@b", "https://***@letta.example/v1/?next=a@b"),
        ("http://letta:8283/agents/me@home", "http://letta:8283/agents/me@home"),
        ("see http://a:b@x:1 and http://c:d@y:2", "see http://***@x:1 and http://***@y:2"),
    ],
)
def test_a_url_is_shown_without_its_user_and_password_whatever_they_hold(url: str, shown: str) -> None:
    """A password with a raw `@` (`p@ss-s3cret`, which URL parsers read up to the authority's last `@`, and so
    the bridge connects with) was shown from its `@` on, in threads, `/letta status` and `check`."""
    assert shown_url(url) == shown


def test_a_start_up_error_line_in_text_is_masked_as_a_log_line_is(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """With LOG_FORMAT=text the `error: ...` a failed command ends with was printed as it was: JSON logs masked it
    (a log line), text did not, so a secret in a start-up error's words reached the terminal or the platform's log."""
    _say_error("cannot start: http://bob:url-pass-9@db:5432 refused sig-secret-77 and xapp-1-A2-b3c4", False)
    before_setup = capsys.readouterr().err  # no settings read yet: token shapes and URL credentials are known
    assert before_setup == "error: cannot start: http://***@db:5432 refused sig-secret-77 and [redacted]\n"
    setup_logging("INFO", "text", ["sig-secret-77"])
    _say_error("cannot start: http://bob:url-pass-9@db:5432 refused sig-secret-77 and xapp-1-A2-b3c4", False)
    said = capsys.readouterr().err
    assert said == "error: cannot start: http://***@db:5432 refused [redacted] and [redacted]\n", said
    _say_error("DATABASE_URL has no scheme: write it as postgres://user:password@host:5432/database", False)
    advice = capsys.readouterr().err
    assert advice.endswith("write it as postgres://user:password@host:5432/database\n"), "no one's secret"
