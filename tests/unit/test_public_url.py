"""init's public URL check (58b9d5a refuses a URL that would make the manifest's request_url wrong, such
as `https:/slack/events`): a URL with a query or a fragment was taken, and Slack was told to call
`https://bridge.acme.test?x=1/slack/events` (the path lands inside the query), which never reaches the bridge; so
were a port 0 and a user or password, which Slack never sends."""

from __future__ import annotations

import pytest

from bridge.init_questions import check_public_url


@pytest.mark.parametrize("url", ["https://bridge.acme.test?x=1", "https://bridge.acme.test/#top"])
def test_a_public_url_with_a_query_or_fragment_is_refused(url: str) -> None:
    ok, lines = check_public_url(url)
    assert not ok, lines
    assert lines == ["FAIL public URL: give it without `?…` or `#…`: Slack calls https://bridge.acme.test/slack/events"]


@pytest.mark.parametrize(
    ("url", "why"),
    [("https://bridge.acme.test:0", "port 0"), ("https://ops:s3cret@bridge.acme.test", "without a user or password")],
)
def test_a_public_url_with_port_0_or_a_user_is_refused(url: str, why: str) -> None:
    ok, lines = check_public_url(url)
    assert not ok and why in lines[0], lines
    assert "s3cret" not in lines[0]


@pytest.mark.parametrize("url", ["https://bridge.acme.test:8443/base/", "https://[::1]:8443"])
def test_a_public_url_with_a_port_and_path_is_taken(url: str) -> None:
    assert check_public_url(url)[0]
