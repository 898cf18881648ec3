"""revDT: init's public URL check (58b9d5a refuses a URL that would make the manifest's request_url wrong, such
as `https:/slack/events`): a URL with a query or a fragment is taken, and Slack is told to call
`https://bridge.acme.test?x=1/slack/events` (the path lands inside the query), which never reaches the bridge."""

from __future__ import annotations

import pytest

from bridge.init import _check_public_url


@pytest.mark.parametrize("url", ["https://bridge.acme.test?x=1", "https://bridge.acme.test/#top"])
def test_a_public_url_with_a_query_or_fragment_is_refused(url: str) -> None:
    ok, lines = _check_public_url(url)
    assert not ok, lines
