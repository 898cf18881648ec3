"""A link an agent writes cannot pass for a link to somewhere else.

An agent's Markdown `[https://good.example](https://evil.example)` became Slack's `<https://evil.example|https://
good.example>`: the reader sees good.example, the click goes to evil.example. Agents read text others wrote
(thread context, shared files), so a prompt injection can ask for exactly that. A label that names an address
(a URL, a domain, an email) other than the link's own now shows the real address beside it.
"""

from __future__ import annotations

import re

import pytest

from bridge.slack.markdown import to_mrkdwn


def shown_targets(mrkdwn: str) -> list[tuple[str, str]]:
    """(target, label) of each Slack link in the text; a bare `<url>` shows its own address."""
    return [(m.group(1), m.group(2) or m.group(1)) for m in re.finditer(r"<([^|>]+)(?:\|([^>]*))?>", mrkdwn)]


@pytest.mark.parametrize(
    "markdown",
    [
        "[https://good.example.com/login](https://evil.example/login)",
        "[good.example.com](https://evil.example)",
        "Sign in at [www.paypal.com](https://paypa1.example/x) today",
        "[https://good.example.com](https://good.example.com.evil.example/)",
        "[docs at https://good.example.com](https://evil.example)",
        "![https://good.example.com/logo.png](https://evil.example/logo.png)",
        "[ceo@good.example.com](mailto:thief@evil.example)",
    ],
)
def test_a_label_naming_another_address_shows_the_real_one(markdown: str) -> None:
    out = to_mrkdwn(markdown)
    targets = shown_targets(out)
    assert targets, out
    for target, label in targets:
        real = target.removeprefix("mailto:")
        assert real in label, f"{out!r}: a link to {target} is shown as {label!r}"


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("[docs](https://example.com/a)", "<https://example.com/a|docs>"),
        ("[example.com](https://example.com/docs)", "<https://example.com/docs|example.com>"),
        ("[www.example.com](https://example.com)", "<https://example.com|www.example.com>"),
        ("[https://example.com/a](https://www.example.com/b)", "<https://www.example.com/b|https://example.com/a>"),
        ("[README.md](https://github.com/o/r/blob/main/README.md)",
         "<https://github.com/o/r/blob/main/README.md|README.md>"),
        ("[team@example.com](mailto:team@example.com)", "<mailto:team@example.com|team@example.com>"),
        ("[write to us](mailto:team@example.com)", "<mailto:team@example.com|write to us>"),
    ],
)
def test_honest_labels_are_kept(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn
