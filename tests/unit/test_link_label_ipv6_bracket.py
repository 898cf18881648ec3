"""A label naming one IPv6 literal host on a link to another is a disguise, and an honest one is not: the `]`
closing the literal is punctuation (Pe), and `_trim` took it off both the label's address and the link's URL, so
urlsplit refused each, both hosts read as "" and compared equal. A `]` is now taken off only when it closes no `[`."""

from __future__ import annotations

import pytest

from bridge.slack.addresses import disguised
from bridge.slack.markdown import to_mrkdwn


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("http://[2001:db8::2]", "http://[2001:db8::1]"),
        ("http://[2001:db8::2]/", "http://[2001:db8::1]/"),
    ],
)
def test_a_label_naming_another_ipv6_host_is_a_disguise(url: str, label: str) -> None:
    assert disguised(url, label)


def test_a_label_naming_another_ipv6_host_shows_the_real_address() -> None:
    shown = to_mrkdwn("[http://[2001:db8::1]/](http://[2001:db8::2]/)")
    assert "(<http://[2001:db8::2]/>)" in shown, shown


def test_an_honest_ipv6_label_stays_a_link() -> None:
    assert not disguised("http://[2001:db8::1]/docs", "see http://[2001:db8::1]/")
