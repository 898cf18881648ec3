"""A link's label naming a domain the bridge had no list entry for could still disguise the link.

`[unicredit.it](https://evil.example.net/login)` became `<https://evil.example.net/login|unicredit.it>`: only
domains on a few listed top-level domains, in ASCII with ASCII dots, counted as addresses, so a bank on `.it`,
a look-alike with a Cyrillic letter or a full-width dot passed, in the finished reply and in the streamed draft.
And an honest link to `münchen.de` was shown as disguised: markdown-it writes its host as punycode.
"""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from bridge.slack.live import stream_text
from bridge.slack.markdown import to_mrkdwn

LABELS = [
    "unicredit.it", "santander.es", "mbank.pl", "kbc.be", "op.fi", "p\u0430ypal.com", "münchen.de",
    "paypal\uff0ecom", "paypal\u3002com", "paypal\u2024com", "ceo@paypal\uff0ecom",
]


@pytest.mark.parametrize("label", LABELS)
def test_a_label_naming_another_domain_shows_the_real_address(label: str) -> None:
    out = to_mrkdwn(f"Log in at [{label}](https://evil.example.net/login) now")
    links = re.findall(r"<([^|>]+)(?:\|([^>]*))?>", out)
    assert links, out
    for target, shown in links:
        assert not shown or shown == target, f"the reader sees {shown!r}, the click goes to {target}: {out!r}"


@pytest.mark.parametrize("label", LABELS)
def test_a_streamed_draft_does_not_link_a_label_naming_another_domain(label: str) -> None:
    markdown = f"Log in at [{label}](https://evil.example.net/login) now"
    tokens = MarkdownIt("commonmark").parse(stream_text(markdown))
    children = [child for token in tokens for child in token.children or []]
    assert not any(child.type == "link_open" for child in children), stream_text(markdown)


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("The city's site: <https://münchen.de/rathaus>",
         "The city's site: <https://xn--mnchen-3ya.de/rathaus|https://münchen.de/rathaus>"),
        ("[münchen.de](https://münchen.de/rathaus)", "<https://xn--mnchen-3ya.de/rathaus|münchen.de>"),
        ("[Example.COM](https://example.com)", "<https://example.com|Example.COM>"),
        ("[app.py](https://github.com/o/r/blob/main/app.py)", "<https://github.com/o/r/blob/main/app.py|app.py>"),
        ("[docs/setup.md](https://example.com/s)", "<https://example.com/s|docs/setup.md>"),
        ("[e.g. the guide](https://example.com/g)", "<https://example.com/g|e.g. the guide>"),
    ],
)
def test_honest_labels_stay_links(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn
