"""What a gateway's own error answer proves about a send: Cloudflare in front of Letta Cloud, Envoy (Istio, and the
meshes and load balancers built on it), a load balancer. A send is made again only when the answer proves it never
reached Letta; any other gateway error may come after the gateway forwarded it (Cloudflare's 524 after 100 s of
waiting on the origin, Envoy's reset after the request went upstream), so its outcome is unknown and history is
looked at first (Letta does not deduplicate: a second send is a second turn).

Proofs, from what each gateway documents:
- Cloudflare marks its own pages `server: cloudflare` with a `cf-ray` header. 521 (the origin refused the
  connection), 522 (the connection to it timed out) and 523 (it could not be reached) never sent the request; 520
  (an empty or unreadable answer from the origin) and 524 (no answer within 100 s of sending it) came after it.
- Envoy's local replies are plain text: `no healthy upstream`, or `upstream connect error or disconnect/reset before
  headers. reset reason: ...`. Only a connect failure, a connect timeout or its own circuit breaker (`overflow`),
  with no retry before it, proves the request stayed in Envoy; a reset on an open connection, a retried attempt or
  `upstream request timeout` may follow a forwarded one.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass

CLOUDFLARE_UNSENT = {
    521: "Cloudflare could not connect to the Letta server: it refused the connection",
    522: "Cloudflare could not connect to the Letta server in time",
    523: "Cloudflare could not reach the Letta server",
}
CLOUDFLARE_UNKNOWN = {
    520: "the Letta server's answer to Cloudflare was empty or could not be read",
    524: "Cloudflare stopped waiting for the Letta server's answer",
}
ENVOY_RESET = re.compile(
    r"upstream connect error or disconnect/reset before headers\. (?P<retried>retried and the latest )?"
    r"reset reason: (?P<reason>[a-z_ ]+)"
)
PROXY = "Envoy"
ENVOY_UNSENT = frozenset({"connection failure", "local connection failure", "remote connection failure",
                          "connection timeout", "overflow"})


@dataclass(frozen=True)
class GatewayAnswer:
    """A gateway's own error: who answered (for the log), whether it proves the send never reached Letta, and what
    it said in a few plain words for the thread (never its HTML page)."""

    name: str
    unsent: bool
    said: str


def read(status: int, headers: Mapping[str, str], body: str) -> GatewayAnswer | None:
    """The gateway's error this answer is, or None when nothing in it names one (Letta's own, or unknown)."""
    if _cloudflare(headers) and status in CLOUDFLARE_UNSENT:
        return GatewayAnswer("Cloudflare", True, CLOUDFLARE_UNSENT[status])
    if _cloudflare(headers) and status in CLOUDFLARE_UNKNOWN:
        return GatewayAnswer("Cloudflare", False, CLOUDFLARE_UNKNOWN[status])
    text = " ".join(body.split())
    if text.startswith("no healthy upstream"):
        return GatewayAnswer(PROXY, True, "the proxy in front of Letta had no Letta server to send it to")
    if text.startswith("upstream request timeout"):
        return GatewayAnswer(PROXY, False, "the proxy in front of Letta stopped waiting for its answer")
    reset = ENVOY_RESET.match(text)
    if reset is not None:
        reason = reset["reason"].replace("_", " ").strip()
        unsent = reset["retried"] is None and reason in ENVOY_UNSENT
        said = "could not connect to it" if unsent else f"lost its connection to it: {reason}"
        return GatewayAnswer(PROXY, unsent, f"the proxy in front of Letta {said}")
    return None


def plain(body: str) -> str:
    """An error body as words for a thread: an HTML page (a proxy's, a load balancer's) is its title, or its first
    heading; any other text is kept as it is."""
    if not re.match(r"\s*<(!doctype|html|head|body)", body, re.IGNORECASE):
        return body
    named = re.search(r"<title[^>]*>(.*?)</title>", body, re.IGNORECASE | re.DOTALL) or re.search(
        r"<h1[^>]*>(.*?)</h1>", body, re.IGNORECASE | re.DOTALL
    )
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", named[1])).split()) if named else ""


def _cloudflare(headers: Mapping[str, str]) -> bool:
    return headers.get("server", "").lower() == "cloudflare" and bool(headers.get("cf-ray"))
