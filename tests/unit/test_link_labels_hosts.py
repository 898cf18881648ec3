"""Honest links whose label is the link's own host stay plain links; a label naming another host does not.

`[straße.de](https://straße.de)` was shown as disguised: hosts were compared through Python's IDNA 2003 codec, which
maps ß to ss and ς to σ, while markdown-it writes a link's host as plain per-label punycode. A label with an address
then a comma took the comma into the host. And a label that is an IPv4 address could hide where the link goes.
"""

from __future__ import annotations

import time

import pytest

from bridge.slack.addresses import disguised
from bridge.slack.markdown import to_mrkdwn


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("[straße.de](https://straße.de)", "<https://xn--strae-oqa.de|straße.de>"),
        ("[fußball.de](https://fußball.de/x)", "<https://xn--fuball-cta.de/x|fußball.de>"),
        ("[ελλάς.gr](https://ελλάς.gr)", "<https://xn--hxarsa0b.gr|ελλάς.gr>"),
        ("[münchen.de](https://MÜNCHEN.DE)", "<https://xn--MNCHEN-psa.DE|münchen.de>"),
        ("[MÜNCHEN.DE](https://münchen.de)", "<https://xn--mnchen-3ya.de|MÜNCHEN.DE>"),
        ("[see www.example.com, then](https://www.example.com)", "<https://www.example.com|see www.example.com, then>"),
        ("[https://example.com, the site](https://example.com)", "<https://example.com|https://example.com, the site>"),
        ("[(see https://example.com/a_(b))](https://example.com/)", "<https://example.com/|(see https://example.com/a_(b))>"),
        ("[192.168.1.1](http://192.168.1.1/login)", "<http://192.168.1.1/login|192.168.1.1>"),
        ("[203.0.113.9:8080/x](http://203.0.113.9:8080/x)", "<http://203.0.113.9:8080/x|203.0.113.9:8080/x>"),
    ],
)
def test_honest_label_stays_a_link(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


@pytest.mark.parametrize(
    "markdown",
    [
        "[192.168.1.1](http://203.0.113.9/login)",
        "[login at 192.168.1.1:8443/admin](https://evil.example/login)",
        "[straße.de](https://strasse.de)",
        "[strasse.de](https://straße.de)",
        "[www.example.com, then](https://evil.example)",
    ],
)
def test_a_label_naming_another_host_shows_the_real_address(markdown: str) -> None:
    out = to_mrkdwn(markdown)
    assert out.endswith(">)") and out.count("<") == 1, out


def test_an_ip_inside_a_version_or_a_longer_number_is_not_an_address() -> None:
    assert not disguised("https://example.com/", "release 1.2.3.4.5")
    assert not disguised("https://example.com/", "v1.2.3.4")


def test_a_punycode_label_that_decodes_to_ascii_is_not_that_ascii_host() -> None:
    assert disguised("https://xn--paypal-.com/", "paypal.com")
    assert disguised("https://xn--zz.com/", "zz.com")
    assert not disguised("https://xn--zz.com/", "XN--ZZ.com")


def test_a_url_ending_in_many_parentheses_costs_in_proportion_to_its_length() -> None:
    short, long = "https://a.example" + ")" * 2_000, "https://a.example" + ")" * 20_000
    assert not disguised("https://a.example/", long)
    costs = []
    for label in (short, long):
        started = time.perf_counter()
        disguised("https://a.example/", label)
        costs.append(time.perf_counter() - started)
    assert costs[1] / max(costs[0], 1e-6) < 40, costs
