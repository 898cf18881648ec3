"""Finding out what became of a send whose outcome is unknown (the bridge died, or the answer was lost on the way
back), so that an agent that may still be answering is never asked again.

A real Letta server stores the user message, with the bridge's `otid`, only when the agent's step ends; until
then the send shows only as an active run (reference/letta/README.md §19). So:
- `settle`: wait until the agent (or the conversation) has no active run that the send could be, then look the
  otid up in history. The wait has no bound of its own: the turn's deadline ends it. A read that fails on the way
  (a gateway's 502, a timeout) is made again a few times: the send is never made again, so its answer is worth
  waiting for; past that the caller says the outcome is unknown (`unread`).
- Letta has no lookup by otid: page back through the history (newest page first) until the `user_message`
  carrying the otid shows up. The turn's reply is the agent's `assistant_message`s after it, up to the next user
  message someone sent (not one Letta wrote itself, such as a tool call's heartbeat: own_messages.py), and only
  those the agent itself said (a 0.11.7 manager's answer can quote its workers). A send to a
  conversation is looked up in that conversation's history: the agent's own mixes every thread. A send may be
  looked up by several otids (the two an agent's first send of a turn may have carried: which one depended on
  whether the server kept background runs when it was made).
- An `approval_request_message` after the otid's user message with no tool return for its calls yet is a request
  Letta still waits on (`Found.asked`): the agent takes no other message until it is decided. One the agent made in
  answer to a decision whose answer was never read (a stop's denial: the process died, or the stream failed) is
  found the same way after that decision's tool return (`still_waiting`).
- A 0.11.7 group send lists no run at all: `group_settled` waits until each member the send reached has answered
  it, up to `patience` seconds after the send was made (a member's step never lasts that long).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, TypeVar

from bridge.domain import AgentFailure, AgentRef, Target
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.letta.exchange import Asked, asked
from bridge.letta.models import (
    ApprovalRequestMessage,
    AssistantMessage,
    LettaMessage,
    ToolReturnMessage,
    UserMessage,
)
from bridge.letta.own_messages import someone_asks
from bridge.letta.supervised import SUPERVISOR_TOOL, worker_replies

T = TypeVar("T")
log = logging.getLogger(__name__)

PAGE = 100
MAX_PAGES = 10
POLL = 1.0  # seconds between looks at a run that is still going
PATIENCE = 30.0  # seconds `still_waiting` waits for a decision's step to end: past that it cannot tell what is asked
# Pauses before history is read again after a failure on the way (about 15 s in all, within any turn's deadline).
READ_AGAIN = (0.5, 1.0, 2.0, 4.0, 8.0)
PASSING = frozenset({Kind.SERVER_ERROR, Kind.TIMEOUT, Kind.DISCONNECTED, Kind.UNREACHABLE})
UNREAD = (
    "Letta did not say whether {agent} got the message, and {agent}'s answer could not be read back from Letta "
    "({why}). {agent} is not asked again, so as not to answer twice: look for the answer in Letta, or ask again if "
    "there is none."
)

class Undecided(LettaError):
    """`still_waiting`'s TIMEOUT, by cause: a run begun since the decision was still listed going after `waited`
    seconds (what the agent asked in answer is not stored yet), or a request a decision was sent for still showed
    waiting in history (the decision itself may be in its step still). `going`: only the run held, history showing
    the decided requests answered; a run going may be the decision's own, so they are not cleared otherwise."""

    def __init__(self, waited: float, run: bool, answered: bool = False) -> None:
        cause = "a run was still going" if run else "Letta was still working on the decision"
        super().__init__(Kind.TIMEOUT, f"{cause} after {waited:g} seconds")
        self.waited, self.going = waited, run and answered


Otids = str | tuple[str, ...]  # one send's otid, or every otid it may have carried


class Sent(NamedTuple):
    """How a send is looked up in history: the otid(s) it may have carried, when it was made, its conversation."""

    otids: Otids
    since: datetime | None
    conversation: str | None


@dataclass(frozen=True)
class Found:
    """The otid's user message exists; `texts` is what the agent answered after it (maybe nothing yet);
    `workers` is what a supervisor's workers answered, read from its tool return, as (agent id, text);
    `tool_returns` the tool calls that returned after it (a decision on a tool call reached Letta); `asked` the
    approval requests after it that Letta still waits on (no tool return for any of their calls)."""

    texts: tuple[str, ...]
    workers: tuple[tuple[str, str], ...] = ()
    tool_returns: tuple[str, ...] = ()
    asked: tuple[ApprovalRequestMessage, ...] = ()


def replies_after(messages: Sequence[LettaMessage], otid: Otids, author: str | None = None) -> Found | None:
    """What followed the otid's user message; with `author`, assistant messages named for someone else (a worker's
    words in a 0.11.7 manager's history) are not the agent's reply."""
    otids = (otid,) if isinstance(otid, str) else otid
    for index, message in enumerate(messages):
        if isinstance(message, UserMessage) and message.otid in otids:
            texts: list[str] = []
            workers: list[tuple[str, str]] = []
            returned: list[str] = []
            asked: list[ApprovalRequestMessage] = []
            seen: set[str] = set()
            for later in messages[index + 1 :]:
                if someone_asks(later):
                    break
                if isinstance(later, ApprovalRequestMessage):
                    asked.append(later)
                if isinstance(later, ToolReturnMessage):  # parallel calls are answered in one message
                    returned.extend(r.tool_call_id for r in later.returns() if r.tool_call_id)
                if isinstance(later, ToolReturnMessage) and later.name == SUPERVISOR_TOOL:
                    workers.extend(worker_replies(later.tool_return))
                if isinstance(later, AssistantMessage) and later.text.strip():
                    if author is not None and later.name not in (None, author):
                        continue
                    key = later.otid or later.id or str(len(texts))
                    if key not in seen:
                        seen.add(key)
                        texts.append(later.text.strip())
            waiting = tuple(a for a in asked if not any(c.tool_call_id in returned for c in a.calls))
            return Found(tuple(texts), tuple(workers), tuple(returned), waiting)
    return None


def waiting_after(messages: Sequence[LettaMessage], ids: set[str]) -> list[ApprovalRequestMessage]:
    """The approval requests, oldest first, Letta still waits on (no tool return for their calls) among those in a
    chain from the tool calls `ids`: a request holding one of them, or one the agent made after a tool return for one
    of the chain's calls and before any later user message someone sent (its answer to a decision), and so on."""
    known, returned = set(ids), set[str]()
    chain: list[ApprovalRequestMessage] = []
    answering = False
    for message in messages:
        if someone_asks(message):
            answering = False
        elif isinstance(message, ToolReturnMessage):
            got = {i for r in message.returns() if (i := r.tool_call_id)}
            returned |= got
            answering = answering or bool(got & known)
        elif isinstance(message, ApprovalRequestMessage):
            calls = {i for c in message.calls if (i := c.tool_call_id)}
            if answering or calls & known:
                chain.append(message)
                known |= calls
    return [a for a in chain if not any(c.tool_call_id in returned for c in a.calls)]


async def still_waiting(
    client: LettaClient, agent_id: str, conversation: str | None, ids: Sequence[str], since: datetime | None = None,
    patience: float | None = None, sent: Collection[str] = (),
) -> list[Asked]:
    """What Letta still waits on in the chain from the tool calls `ids` (`waiting_after`), read from the agent's (the
    conversation's) recent history once no run begun since `since` is going and no request holding one of the `sent`
    calls (a decision on them went) still shows waiting: a run a cancel reached is listed ended at once while its
    model step goes on, and what the step stores is stored only when it ends (reference §16, §19), so what the agent
    asked in answer shows only then. Raises LettaError: a TIMEOUT when either still holds after `patience` (PATIENCE)
    seconds (`Undecided`; with a run going, history read once more to say whether the decided requests still wait),
    as what waits is not known then (and a decision sent again would be a second)."""
    loop = asyncio.get_running_loop()
    wait = PATIENCE if patience is None else patience
    deadline, delay = loop.time() + wait, 0.25
    while True:
        going = bool(await client.active_runs(agent_id, conversation, since))
        if not going:
            waiting = await _waiting(client, agent_id, conversation, set(ids))
            if not any(c.tool_call_id in sent for q in waiting for c in q.calls):
                return waiting
        if loop.time() >= deadline:
            log.warning("letta still working on a decision; approvals left unread agent=%s going=%s", agent_id, going)
            raise Undecided(wait, going, going and await _answered(client, agent_id, conversation, ids, sent))
        await asyncio.sleep(min(delay, max(deadline - loop.time(), 0.05)))
        delay = min(delay * 2, POLL * 4)


async def _answered(
    client: LettaClient, agent_id: str, conversation: str | None, ids: Sequence[str], sent: Collection[str]
) -> bool:
    """Whether history shows none of the `sent` calls waiting any more; False when it cannot be read."""
    try:
        waiting = await _waiting(client, agent_id, conversation, set(ids))
    except LettaError:
        return False
    return not any(c.tool_call_id in sent for q in waiting for c in q.calls)


async def _waiting(client: LettaClient, agent_id: str, conversation: str | None, wanted: set[str]) -> list[Asked]:
    """`waiting_after` the calls `wanted` in the recent history, read back as far as the page naming one of them."""
    collected = list[LettaMessage]()
    before: str | None = None
    for _ in range(MAX_PAGES):
        page = await _page(client, agent_id, conversation, before)
        collected = [*page, *collected]
        oldest = page[0].id if page and hasattr(page[0], "id") else None
        if _holds(page, wanted) or not oldest or oldest == before or len(page) < PAGE:
            break
        before = oldest
    return [q for q in (asked(m) for m in waiting_after(collected, wanted)) if q is not None]


async def _page(client: LettaClient, agent_id: str, conversation: str | None, before: str | None) -> list[LettaMessage]:
    """A page of the conversation's history (the agent's own when None), the newest before `before`."""
    if conversation is not None:
        return await client.conversation_history(conversation, limit=PAGE, before=before, agent_id=agent_id)
    return await client.history(agent_id, limit=PAGE, before=before)


def _holds(page: Sequence[LettaMessage], ids: set[str]) -> bool:
    """Whether the page asks for or returns one of the calls `ids`: history older than it is not needed."""
    for message in page:
        if isinstance(message, ApprovalRequestMessage) and any(c.tool_call_id in ids for c in message.calls):
            return True
        if isinstance(message, ToolReturnMessage) and any(r.tool_call_id in ids for r in message.returns()):
            return True
    return False


async def find_turn(
    client: LettaClient, agent_id: str, otid: Otids, conversation: str | None = None, author: str | None = None
) -> Found | None:
    """None when Letta never stored the otid in this agent's (or this conversation's) recent history."""
    collected: list[LettaMessage] = []
    before: str | None = None
    for _ in range(MAX_PAGES):
        page = await _page(client, agent_id, conversation, before)
        if not page:
            break
        collected = [*page, *collected]
        found = replies_after(collected, otid, author)
        if found is not None:
            return found
        oldest = page[0].id if hasattr(page[0], "id") else None
        if not oldest or oldest == before or len(page) < PAGE:
            break
        before = oldest
    return None


async def settle(
    client: LettaClient,
    agent_id: str,
    otid: Otids,
    since: datetime | None,
    conversation: str | None = None,
    author: str | None = None,
) -> Found | None:
    """Wait while the agent (the conversation; `default` or None: the agent's own thread) has a run that a send
    made at `since` could be, then look the otid up. None: no such run is going and Letta never stored the send,
    so it never reached the agent and may be made again. Cancelled by the turn's deadline while a run goes on.
    Raises LettaError when Letta cannot be read, after READ_AGAIN's pauses for a failure on the way."""
    return await read_again(lambda: _settle(client, agent_id, otid, since, conversation, author), agent_id)


async def read_again(read: Callable[[], Awaitable[T]], agent_id: str, pauses: Sequence[float] | None = None) -> T:
    """`read` Letta, again after each of `pauses` (READ_AGAIN's) for a failure on the way; the last one raised."""
    for pause in (*(READ_AGAIN if pauses is None else pauses), None):
        try:
            return await read()
        except LettaError as error:
            if pause is None or error.kind not in PASSING or error.redirected:
                raise
            log.info("letta not read agent=%s kind=%s, reading again in %.1fs", agent_id, error.kind, pause)
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")  # the last pause is None: its failure is raised


async def decision_reached(
    client: LettaClient, agent_id: str, ids: Sequence[str], since: datetime, conversation: str | None = None
) -> bool | None:
    """Whether a decision on the tool calls `ids`, sent at `since` and failed on the way, reached Letta: once no run
    it could have begun is going, a tool return for one of them is in history. False only when the request is found
    there still unanswered, so that a decision is never sent twice (Letta would run another turn); None when the
    request is not in recent history. Raises LettaError when history cannot be read."""
    return await read_again(lambda: _reached(client, agent_id, set(ids), since, conversation), agent_id)


async def _reached(
    client: LettaClient, agent_id: str, ids: set[str], since: datetime, conversation: str | None
) -> bool | None:
    delay = 0.25
    while await client.active_runs(agent_id, conversation, since):
        await asyncio.sleep(delay)
        delay = min(delay * 2, POLL * 4)
    before: str | None = None
    for _ in range(MAX_PAGES):
        page = await _page(client, agent_id, conversation, before)
        for message in reversed(page):  # newest first: a return comes after its request
            if isinstance(message, ToolReturnMessage) and any(r.tool_call_id in ids for r in message.returns()):
                return True
            if isinstance(message, ApprovalRequestMessage) and any(c.tool_call_id in ids for c in message.calls):
                return False
        oldest = page[0].id if page and hasattr(page[0], "id") else None
        if not oldest or oldest == before or len(page) < PAGE:
            break
        before = oldest
    return None


def unread(agent: AgentRef, key: str, error: LettaError) -> AgentFailure:
    """A send whose outcome is unknown, and Letta's history could not be read to learn it: the agent is not asked
    again (it may have answered), and the thread is told so."""
    why = f"HTTP {error.status}" if error.status else error.kind.replace("_", " ")
    return AgentFailure(
        agent.name, UNREAD.format(agent=agent.name, why=why), error.kind, agent.id, error.request_id, key
    )


async def _settle(
    client: LettaClient, agent_id: str, otid: Otids, since: datetime | None, conversation: str | None,
    author: str | None,
) -> Found | None:
    delay = 0.25
    while runs := await client.active_runs(agent_id, conversation, since):
        log.info("letta send may still be running agent=%s otid=%s runs=%s", agent_id, otid, len(runs))
        await asyncio.sleep(delay)
        delay = min(delay * 2, POLL * 4)
    return await find_turn(client, agent_id, otid, conversation, author)


async def group_settled(
    client: LettaClient, members: Sequence[tuple[str, str]], otid: str, patience: float
) -> dict[str, Found]:
    """A 0.11.7 group send, which lists no run: what each member (agent id, name) stored for it, once every member
    that has the otid has answered it and either all have it or none has shown up for `patience` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        found: dict[str, Found] = {}
        for agent_id, name in members:
            said = await find_turn(client, agent_id, otid, author=name)
            if said is not None:
                found[agent_id] = said
        answered = all(f.texts or f.workers for f in found.values())
        if (len(found) == len(members) and answered) or loop.time() >= deadline:
            return found
        await asyncio.sleep(POLL)


async def watch_group(
    client: LettaClient, target: Target, otid: str, patience: float
) -> tuple[Found | None, dict[str, Found]]:
    """A 0.11.7 group send's members watched until it has ended (`group_settled`): (what the manager stored, what
    each agent stored, by id). A supervisor's or dynamic group's manager holds the user's message first (a
    supervisor's workers only ever see the manager's words): when it has it, the send happened and a supervisor's
    workers are done; a dynamic group's speakers follow within moments. Other groups: the agents."""
    agents = [(a.id, a.name) for a in target.agents]
    manager = target.manager if target.manager_type in ("supervisor", "dynamic") else None
    if manager is None:
        return None, await group_settled(client, agents, otid, patience)
    said = (await group_settled(client, [(manager.id, manager.name)], otid, patience)).get(manager.id)
    if said is None or target.manager_type != "dynamic":
        return said, {}
    return said, await group_settled(client, agents, otid, min(patience, 5.0))
