"""The few kinds of Letta failure the bridge tells apart, each with a plain-words explanation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from bridge.letta.kinds import Kind as Kind
from bridge.letta.operator_words import duration, operator_words, plain_scheme
from bridge.logs import shown_url

# 0.16.8's 503 to a `background: true` send when it has no Redis (now): refused before any run, nothing stored.
BACKGROUND_REFUSED = "Background streaming requires Redis"


# Kinds after which the next agent would fail the same way: a bridge-run turn stops there.
SERVER_WIDE = frozenset({Kind.UNREACHABLE, Kind.UNAUTHORIZED, Kind.RATE_LIMITED, Kind.QUOTA, Kind.TIMEOUT})
# Statuses besides 502 and 504 that a gateway answers of its own after it may have forwarded the request: 503
# (Envoy's reset, Heroku's router timeout: nothing in the status proves it never went on), Cloudflare's 520 and 524.
MAYBE_FORWARDED = frozenset({503, 520, 524})


# How a 409 says that another run holds the conversation: 0.16.8's words (with a `run_id` key), and the others Letta
# Code waits out too (letta-code src/utils/conversation-busy-error.ts: its TS core's `{"error": "... is busy with
# another active run."}`, with no run id).
BUSY_WORDS = re.compile(
    r"another request (?:\(run_id=[^)]*\) )?is (?:currently )?(?:being )?processed|currently being processed for this "
    r"conversation|busy with another active run|already processing for this conversation",
    re.IGNORECASE,
)
# How Letta says that the agent or group asked for does not exist (0.16.8 `Agent with ID … not found`, `Group not
# found with id=…`; 0.11.7 `Agent not found`; the App Server `Agent agent-local-… not found`), as opposed to a
# conversation, a run or a route it does not know.
TARGET_WORDS = re.compile(r"^(?:agent|group)\b[^.]*\bnot found", re.IGNORECASE)
CLOUD_HOSTS = frozenset({"api.letta.com"})  # Letta Cloud's API (README: LETTA_BASE_URL's default)


@dataclass(frozen=True)
class KeyOrigin:
    """Where the client's API key was set and who changes it there, in words: said when Letta refuses the key.
    Whoever builds the client knows (`bridge/clients.py`); the key itself is never part of it."""

    where: str = "LETTA_API_KEY"
    who: str = "an operator"


ENV_KEY = KeyOrigin()

PENDING = "{subject} is waiting for someone to approve or deny a tool call, and Letta takes no new message until then."


class LettaError(Exception):
    def __init__(
        self,
        kind: Kind,
        detail: str = "",
        *,
        status: int | None = None,
        base_url: str = "",
        request_id: str = "",
        key_origin: KeyOrigin = ENV_KEY,
    ) -> None:
        super().__init__(f"{kind}: {status or ''} {detail}".strip())
        self.kind = kind
        self.detail = detail
        self.status = status
        self.base_url = shown_url(base_url)  # said in threads and answers: never its user and password
        self.request_id = request_id
        self.key_origin = key_origin  # said for a refused key (UNAUTHORIZED)
        self.retry_after: float | None = None
        self.run_id: str | None = None  # a 409's running run: the conversation is busy, this send did nothing
        self.loop_ran = False  # Letta's own answer from inside the agent loop: it may have stored part of a turn
        self.gateway = ""  # who answered instead of Letta (gateways.py): "Cloudflare", "Envoy"
        self.lasting = False  # the same request would fail again (App Server `retryable: false`, a stop reason)
        self.started = False  # a run Letta began ended failed: its first steps (some words, too) may be stored
        self.app_server = False  # a Letta App Server refused the key: its key is the --ws-token-file token
        self.withdrawn = False  # a TIMEOUT that is the bridge's own deadline: it took the message back itself
        self.out_of_steps = False  # a RUN_FAILED that is the agent's steps used up (stop reason max_steps)

    @property
    def redirected(self) -> bool:
        """The server answered a redirect (never followed): the URL is not where Letta answers."""
        return self.kind == Kind.UNREACHABLE and self.status is not None and 300 <= self.status < 400

    @property
    def tls(self) -> str:
        """How TLS failed on the way, as aiohttp names it (the detail of a connection failure): "certificate" (not
        trusted here), "handshake" (an http:// server asked for https://, a protocol mismatch), else ""."""
        if self.kind != Kind.UNREACHABLE:
            return ""
        if "Certificate" in self.detail:
            return "certificate"
        return "handshake" if "SSL" in self.detail else ""

    @property
    def proxy(self) -> bool:
        """The proxy this host goes through failed: it could not be reached, or refused to carry the request
        (HTTP 407 when it wants credentials); Letta was never reached."""
        return self.kind == Kind.UNREACHABLE and ("Proxy" in self.detail or "the proxy answered" in self.detail)

    @property
    def cloud(self) -> bool:
        """Letta Cloud answered (its logs and whether it runs are not the operator's to check)."""
        return urlsplit(self.base_url).hostname in CLOUD_HOSTS

    @property
    def certainly_unsent(self) -> bool:
        """Letta did not run the request: nothing reached it (a refused connection, a gateway's answer that proves it
        never sent it on), or it refused before doing anything (a 429 not from the agent loop). A 503 proves
        nothing by itself: a gateway answers it after forwarding too (`outcome_unknown`)."""
        unreached = self.kind == Kind.UNREACHABLE and not self.redirected  # a redirect: sent again, it comes again
        return unreached or (self.status == 429 and not self.loop_ran) or self.busy

    @property
    def background_refused(self) -> bool:
        """0.16.8 without Redis refused a `background: true` send before any run began (a server that had Redis when
        asked, restarted without it since): the same send without it is the send."""
        return self.status == 503 and BACKGROUND_REFUSED in self.detail

    @property
    def busy(self) -> bool:
        """Another run holds the conversation (Letta with Redis, Cloud): waited out, then sent again. 0.16.8 names the
        run (`run_id`); other servers only say so in words."""
        return self.kind == Kind.CONFLICT and (self.run_id is not None or bool(BUSY_WORDS.search(self.detail)))

    @property
    def conversation_gone(self) -> bool:
        """A send to a conversation that was deleted (or never existed): nothing ran."""
        return self.kind == Kind.NOT_FOUND and self.detail.startswith("Conversation not found")

    @property
    def target_gone(self) -> bool:
        """Letta does not know the agent or group itself (deleted, or never there): the binding needs changing,
        which the side that shows the failure says how to do."""
        return self.kind == Kind.NOT_FOUND and bool(TARGET_WORDS.search(self.detail))

    @property
    def pending_approval(self) -> bool:
        """The agent (or conversation) waits for a decision on a tool call, and Letta refuses new messages until
        it has one (0.16.8: a 409 `PENDING_APPROVAL`, or a stream's CONFLICT error; reference section 17)."""
        return "waiting for approval" in self.detail or "PENDING_APPROVAL" in self.detail

    @property
    def stale_decision(self) -> bool:
        """Letta rejected a decision on tool calls it no longer waits for (400 `Invalid tool call IDs`; the App
        Server: `Approval request is no longer pending`)."""
        return "Invalid tool call IDs" in self.detail or "no longer pending" in self.detail

    @property
    def outcome_unknown(self) -> bool:
        """The request may have run: the answer was lost on the way back, or a gateway answered of its own after it
        may have forwarded the request (Letta's own 503 from inside the agent loop is an answer, not this)."""
        if self.kind in (Kind.TIMEOUT, Kind.DISCONNECTED) or self.status in (502, 504):
            return True
        maybe = self.status in MAYBE_FORWARDED or bool(self.gateway)
        return self.kind == Kind.SERVER_ERROR and maybe and not self.loop_ran

    def explain(self, what: str = "", looking_up: bool = False) -> str:
        """One or two sentences a Slack user can act on; never a traceback. `looking_up`: the request only read
        `what` (an agent's record, a list, the health check), so nothing was sent to an agent and nothing answered."""
        url = self.base_url or "the Letta server"
        detail = f" ({self.detail})" if self.detail else ""
        subject = what or "the agent"
        if looking_up and (lookup := self._lookup_words(subject)):
            return lookup
        if self.pending_approval:  # where its card is, the turn says when the bridge knows (approvals.py)
            return f"{PENDING.format(subject=upper_first(subject))} Decide on it, then ask again."
        if self.stale_decision:
            return (
                f"Letta no longer waited for that decision on {subject}'s tool call{detail}, so it was not used: "
                "the request had already been answered or had ended."
            )
        match self.kind:
            case Kind.UNREACHABLE if self.redirected:
                return f"I couldn't reach the Letta server at {url}: {self.detail}."
            case Kind.UNREACHABLE if self.proxy:
                return (
                    f"I couldn't reach the Letta server at {url}: the proxy this host goes through failed{detail}. "
                    "An operator needs to check its proxy settings (HTTPS_PROXY, HTTP_PROXY, NO_PROXY)."
                )
            case Kind.UNREACHABLE if self.gateway:
                return (
                    f"I couldn't reach the Letta server at {url}: {self.detail} (HTTP {self.status}). "
                    "Ask again in a moment; if it keeps happening, check that the Letta server is running."
                )
            case Kind.UNREACHABLE if self.cloud:
                return (
                    f"I couldn't reach Letta Cloud at {url}. Ask again in a moment; if it keeps happening, an "
                    "operator needs to check this host's network and proxy settings."
                )
            case Kind.UNREACHABLE if self.tls:
                return (
                    f"I couldn't talk to the Letta server at {url} securely (TLS: {self.detail}). An operator needs "
                    "to check its certificate, or whether LETTA_BASE_URL should start with "
                    f"{plain_scheme(self.base_url)}."
                )
            case Kind.UNREACHABLE:
                return (
                    f"I couldn't reach the Letta server at {url}. Check that it is running and that "
                    "LETTA_BASE_URL is right, then ask again."
                )
            case Kind.TIMEOUT:
                return f"The Letta server at {url} did not answer in time for {subject}. Ask again in a while."
            case Kind.DISCONNECTED:
                return (
                    f"The connection to the Letta server dropped while {subject} was answering; "
                    "the answer may be lost. Ask again if nothing follows."
                )
            case Kind.UNAUTHORIZED:
                origin = self.key_origin
                return (
                    f"The Letta server rejected the bridge's API key (HTTP {self.status}). "
                    f"{origin.who[:1].upper()}{origin.who[1:]} needs to check {origin.where}."
                )
            case Kind.NOT_FOUND:
                return f"Letta does not know {subject}{detail}. It may have been deleted."
            case Kind.ROUTE_MISSING:
                return f"This Letta server has no route for that request{detail}."
            case Kind.INVALID:
                return f"Letta refused the request for {subject}{detail}."
            case Kind.CONFLICT if self.busy:
                run = f" (Letta run {self.run_id})" if self.run_id else ""
                return (
                    f"{upper_first(subject)} was still busy answering an earlier message in this conversation{run} "
                    "after the bridge had waited for it, so this one was not sent. Ask again once that answer is in."
                )
            case Kind.CONFLICT:
                return f"{upper_first(subject)} is busy with another request{detail}. Ask again shortly."
            case Kind.RATE_LIMITED if self.loop_ran:
                return (
                    f"{upper_first(subject)}'s model provider is rate-limiting it{detail}. The bridge did not send "
                    "the message again, since Letta may have begun answering it: ask again in a minute."
                )
            case Kind.RATE_LIMITED:
                said = f": {self.detail}" if self.detail else ""
                wait = f"in {duration(self.retry_after)}" if self.retry_after else "in a minute"
                return f"Letta is rate-limiting the bridge (HTTP 429{said}). Ask again {wait}."
            case Kind.QUOTA if self.started:
                return (
                    f"Letta started {subject}'s answer but stopped it{detail}. An operator needs to check the "
                    "account's plan and usage in Letta; asking again will not help until then."
                )
            case Kind.QUOTA:
                return (
                    f"Letta would not run {subject}: the Letta account's plan limit or credits are used up (HTTP "
                    f"{self.status}{': ' + self.detail if self.detail else ''}). An operator needs to check the "
                    "account's plan and usage in Letta; asking again will not help until then."
                )
            case Kind.SERVER_ERROR if self.gateway:
                return (
                    f"The message to {subject} may have reached Letta, but no answer came back: {self.detail} "
                    f"(HTTP {self.status}). The bridge did not send it again, so that {subject} is not asked twice; "
                    "ask again in a moment."
                )
            case Kind.SERVER_ERROR:
                return self._failed(f"Letta failed while {subject} was answering")
            case Kind.RUN_FAILED if self.out_of_steps:
                return (
                    f"{upper_first(subject)} used every step Letta allows one answer (each tool call is one) and "
                    f"stopped before finishing, so what {subject} wrote above is cut short. Ask {subject} to continue."
                )
            case Kind.RUN_FAILED if self.lasting and self.started:
                return (
                    f"Letta started {subject}'s answer but it failed{detail}, and would fail alike if asked again: "
                    f"an operator needs to shorten {subject}'s memory or give it a model with a larger context window."
                )
            case Kind.RUN_FAILED if self.lasting:
                return (
                    f"Letta could not run {subject}{detail}, and says asking again will not help: an operator "
                    f"needs to fix {subject} on the Letta server (its model, for one)."
                )
            case Kind.RUN_FAILED:
                return f"Letta started {subject}'s answer but it failed{detail}. Ask again in a moment."
            case Kind.BAD_RESPONSE:
                return f"Letta sent an answer for {subject} that the bridge could not read{detail}."
        return f"Letta failed{detail}."

    def _failed(self, what_failed: str) -> str:
        """A server error of Letta's own, after the words for what failed."""
        said = f": {self.detail}" if self.detail else ""
        where = "Letta Cloud may be having trouble" if self.cloud else "check the Letta server's logs"
        return f"{what_failed} (HTTP {self.status}{said}). Ask again in a moment; if it keeps happening, {where}."

    def _lookup_words(self, subject: str) -> str | None:
        """The failures whose send-time words speak of an agent answering or a message maybe received, said of a
        lookup instead; None where both read the same."""
        asked = f"the bridge's request for {subject}"
        match self.kind:
            case Kind.DISCONNECTED:
                return f"The connection to the Letta server dropped during {asked}. Ask again."
            case Kind.SERVER_ERROR if self.gateway:
                return f"No answer came from Letta to {asked}: {self.detail} (HTTP {self.status}). Ask again shortly."
            case Kind.SERVER_ERROR:
                return self._failed(f"Letta failed to answer {asked}")
            case Kind.QUOTA:
                return (
                    f"Letta refused {asked}: the Letta account's plan limit or credits are used up (HTTP "
                    f"{self.status}{': ' + self.detail if self.detail else ''}). An operator needs to check the "
                    "account's plan and usage in Letta."
                )
        return None

    def for_operator(self, what: str) -> str:
        """The same failure for the person at the terminal (`check`, `init`, `channels`); `explain` is for people in
        Slack."""
        return operator_words(self, what)


def upper_first(text: str) -> str:
    """A sentence's first letter upper-cased, the rest as written: `ResearchBot` stays ResearchBot
    (str.capitalize would say Researchbot)."""
    return text[:1].upper() + text[1:]
