"""Pure: whether a link's label names an address (a URL, a domain, an email) other than where the link goes.

Agents read text others wrote, so a prompt injection can ask for `[paypal.com](https://evil…)`. Any word that reads
as a domain counts, in any script and with the dots a reader takes for one, and so does an IPv4 address; hosts are
compared as markdown-it writes a link's (per-label punycode, no IDNA mapping), so an honest link to `münchen.de` or
`straße.de` is not taken for a disguised one.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from bridge.slack.decide import INVISIBLE

# What in a link's label names an address: a URL, a www. host, an email, any `name.tld` word, in any script and
# with the dots a reader takes for one (`paypal．com`), or an IPv4 address; only a word ending in a common file
# extension (README.md, app.py) is not a domain. Better the real address shown beside an honest label than a
# disguised link. Each alternative starts only where a word starts, so a long label costs in proportion to its length.
_DOT = "[.\uff0e\u3002\uff61\u2024]"
_FILE = "md|py|js|ts|tsx|jsx|txt|json|toml|yaml|yml|csv|html|htm|css|log|png|jpg|jpeg|gif|svg|pdf|go|java"
_ADDRESS = re.compile(
    rf"(?i)(?<![\w+.-])(?:[a-z][a-z0-9+.-]*://|www\.)[^\s<>]+|(?<![\w.+-])[\w.+-]+@[\w-]+(?:{_DOT}[\w-]+)+"
    rf"|(?<![\w-])(?<![\w-]{_DOT})(?:[\w-]+{_DOT})+(?!(?:{_FILE})(?![\w-]))(?:[^\W\d_]{{2,}}|xn--[a-z0-9-]+)"
    rf"(?![\w-]|{_DOT}[\w-])(?:[/:?#][^\s<>]*)?"
    rf"|(?<![\w-])(?<![\w-]{_DOT})(?:\d{{1,3}}{_DOT}){{3}}\d{{1,3}}(?![\w-]|{_DOT}[\w-])(?:[/:?#][^\s<>]*)?"
)
# What ends a sentence rather than an address (`see www.example.com, then`); a `)` only when it closes no `(`.
_TRAILING = ".,;:!?'\""


def _host(address: str) -> str:
    """An address's host (lower case, ASCII as in a link's URL, without `www.`), or an email's whole address."""
    address = re.sub(_DOT, ".", unicodedata.normalize("NFKC", _trim(address)))
    if "://" not in address and "@" in address.split("/", 1)[0]:
        user, _, domain = address.lower().removeprefix("mailto:").split("?", 1)[0].rpartition("@")
        return f"{user}@{_ascii(domain)}"
    try:
        host = urlsplit(address if "://" in address else "http://" + address).hostname or ""
    except ValueError:
        return ""
    return _ascii(host).removeprefix("www.")


def _trim(address: str) -> str:
    """The address without the punctuation after it (a closing quote or bracket in any script: `“www.a.com”`), in
    one pass (a label may end in thousands of `)`); a `)` closing a `(` in it is kept."""
    brackets = {pair: [address.count(pair[0]), address.count(pair[1])] for pair in ("()", "[]")}
    end = len(address)
    while end and _trailing(address[end - 1], brackets):
        if (pair := _PAIR_OF.get(address[end - 1])) is not None:
            brackets[pair][1] -= 1
        end -= 1
    return address[:end]


_PAIR_OF = {")": "()", "]": "[]"}


def _trailing(char: str, brackets: dict[str, list[int]]) -> bool:
    """Punctuation after an address; a `)` or `]` only when it closes none of the address's own (an IPv6 host's
    `[…]`, a path's `(…)`)."""
    if (pair := _PAIR_OF.get(char)) is not None:
        opened, closed = brackets[pair]
        return opened < closed
    return char in _TRAILING or unicodedata.category(char)[0] == "P"


def _ascii(host: str) -> str:
    """A host as markdown-it writes a link's, compared in lower case: each non-ASCII label `xn--` and its punycode,
    with no IDNA mapping (which would make `straße.de` `strasse.de`); a link's `xn--MNCHEN-psa` (`MÜNCHEN`) is
    decoded and lower-cased first, so it matches `münchen`'s `xn--mnchen-3ya`."""
    return ".".join(_label(part) for part in host.rstrip(".").split("."))


def _label(part: str) -> str:
    """One label of a host in lower-case punycode; an `xn--` label that decodes to nothing but ASCII, or not at all,
    is kept in lower case (`xn--paypal-` is not `paypal`)."""
    if part[:4].lower() == "xn--":
        try:
            decoded = part[4:].encode("ascii").decode("punycode")
        except UnicodeError:
            return part.lower()
        if decoded.isascii():
            return part.lower()
        part = decoded
    part = part.lower()
    try:
        return part if part.isascii() else "xn--" + part.encode("punycode").decode()
    except UnicodeError:
        return part


def names_address(label: str) -> bool:
    """Whether a link's label names an address (a URL, a host, an email): it may disguise where the link goes.
    Read without invisible characters, which Slack shows as nothing (`paypal\u200b.com` reads as paypal.com)."""
    return _ADDRESS.search(INVISIBLE.sub("", label)) is not None


def disguised(url: str, label: str) -> bool:
    """Whether the label names an address other than where the link goes."""
    target = _host(url)
    return any(_host(found) != target for found in _ADDRESS.findall(INVISIBLE.sub("", label)))
