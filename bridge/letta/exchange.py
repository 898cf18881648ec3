"""One send to a group or an agent, its replies read as (author, text) as each speaker finishes, and a group
reply attributed to the member who said it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from bridge.domain import AgentReply, Note, Target, ToolCall
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.letta.locks import LeftGoing
from bridge.letta.models import (
    ApprovalRequestMessage,
    AssistantMessage,
    LettaMessage,
    LettaResponse,
    Ping,
    StopReason,
    ToolReturnMessage,
    UsageStatistics,
    run_error,
    stop_failure,
)
from bridge.letta.notes import NoteTaker
from bridge.letta.stream import Collector, supervised_replies
from bridge.letta.toolprogress import Report, ToolWatch

log = logging.getLogger(__name__)

# Pauses before each re-attach to a dropped background stream that brings no event back (a gateway answering 502
# while Letta restarts, say): about 45 s in all, then the turn says what failed, instead of asking in a loop.
REATTACH_PAUSES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0)


def authored_replies(response: LettaResponse, default_author: str) -> list[tuple[str, str]]:
    """(author, text) per agent in speaking order; consecutive messages of one author are joined.

    Group replies name their author in `name`; direct agent replies have `name: null`. A supervisor's workers
    come out of its tool return, authored by agent id.
    """
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for message in response.messages:
        if isinstance(message, ToolReturnMessage):
            out.extend((author, text) for author, text in supervised_replies(message) if text)
            continue
        if not isinstance(message, AssistantMessage):
            continue
        key = message.otid or f"{message.id}:{len(out)}"
        if key in seen:
            continue
        seen.add(key)
        text = message.text.strip()
        author = message.name or default_author
        if not text:
            if not out or out[-1][0] != author:
                out.append((author, ""))  # a blank message: said in the thread as an empty reply
            continue
        if out and out[-1][0] == author:
            out[-1] = (author, "\n\n".join(t for t in (out[-1][1], text) if t))
        else:
            out.append((author, text))
    return out


def attribute(
    target: Target, author: str, text: str, step: str, index: int, notes: tuple[Note, ...] = ()
) -> AgentReply | None:
    """A group reply under its speaker's name; None for a dynamic manager's choice of the next speaker.

    `author` is a message's `name`, or a worker's agent id out of a supervisor's tool return.
    """
    manager = target.manager
    agent = target.agent_named(author) or target.agent_with_id(author)
    if manager is not None and author in (manager.name, manager.id):
        agent = manager
    if target.manager_type == "dynamic" and (agent is None or agent == manager):
        log.debug("dynamic group %s: the manager chose the next speaker", target.group_id)
        return None
    return AgentReply(agent.name if agent else author, text, agent.id if agent else None, step, index, notes)


def _step(steps: dict[str, str], item: object, author: str) -> None:
    """Remember the step of a speaker's latest words (an assistant message's `step_id`)."""
    step_id = getattr(item, "step_id", None)
    if getattr(item, "message_type", None) == "assistant_message" and isinstance(step_id, str) and step_id:
        steps[getattr(item, "name", None) or author] = step_id


class Said(NamedTuple):
    """One speaker's finished reply, and what it reasoned and which tools it called on the way."""

    author: str
    text: str
    notes: tuple[Note, ...] = ()
    step_id: str = ""  # the Letta step that wrote it (REST 0.16+): where a feedback vote on it goes


class Asked(NamedTuple):
    """The agent stopped to ask whether its tool calls may run (an `approval_request_message`, then
    `stop_reason: requires_approval`); `request_id` is that message's id."""

    request_id: str
    calls: tuple[ToolCall, ...]


def asked(item: LettaMessage) -> Asked | None:
    """The question a whole `approval_request_message` asks."""
    questions = Questions()
    questions.add(item)
    found = questions.done()
    return found[0] if found else None


class Questions:
    """Approval requests as a send brings them: each whole, or (stream_tokens) in fragments of one message, the
    same id and tool_call_id on each, the first naming the tool, every one carrying more of its arguments
    (approval-stream-tokens.json). Asked once the send has ended, when every fragment is in."""

    def __init__(self) -> None:
        self._calls: dict[str, dict[str, list[str]]] = {}  # message id -> tool_call_id -> [name, arguments]

    def add(self, item: LettaMessage) -> None:
        if not isinstance(item, ApprovalRequestMessage):
            return
        calls = self._calls.setdefault(item.id or "", {})
        for call in item.calls:
            known = calls.setdefault(call.tool_call_id or "", ["", ""])
            known[0] = known[0] or call.name or ""
            known[1] += call.arguments or ""

    def done(self) -> list[Asked]:
        found = [
            Asked(request_id, tuple(ToolCall(i, name or "tool", arguments) for i, (name, arguments) in calls.items()))
            for request_id, calls in self._calls.items()
            if calls
        ]
        self._calls = {}
        return found


Spoken = Said | Asked | LettaError
CUT_OFF = " _(cut off)_"  # after the words of an answer whose stream broke while it was being written


@dataclass
class Progress:
    """Where a background run's stream has got to: its run and the last `seq_id` received (Redis servers). A stream
    that drops is re-attached from there; after a restart the run is found again by the send's otid."""

    otid: str | None = None
    run_id: str | None = None
    seq_id: int | None = None
    attach: bool = False  # re-attach to the run of the message's otid instead of sending it (a restarted bridge)

    def saw(self, item: Any) -> None:
        run_id, seq_id = getattr(item, "run_id", None), getattr(item, "seq_id", None)
        if run_id and run_id != self.run_id:
            self.run_id = run_id
            log.info("letta background run run_id=%s otid=%s", run_id, self.otid)
        if isinstance(seq_id, int):
            self.seq_id = seq_id
# Called with (author, text so far) while a token-streamed reply grows.
Draft = Callable[[str, str], Awaitable[None]]


async def exchange(
    client: LettaClient,
    message: dict[str, Any],
    author: str,
    streaming: bool,
    group: tuple[str, list[str]] | None = None,
    agent_id: str | None = None,
    tokens: bool = False,
    draft: Draft | None = None,
    conversation: str | None = None,
    background: Progress | None = None,
    tools: Report | None = None,
    left: LeftGoing | None = None,
    watch: ToolWatch | None = None,
) -> AsyncIterator[Spoken]:
    """One send to a group or an agent: yields each reply as soon as that speaker has finished, then an
    in-answer error if there was one. Raises LettaError only when nothing at all came back.

    Streams when asked to; a server without the stream route gets the plain send instead, and is remembered.
    With `tokens`, a reply arrives in fragments and `draft` is shown each longer version of it, `tools` each move
    of a tool call on the way (toolprogress.py). With
    `conversation`, the agent's send goes to that conversation (its Slack thread, or `default`: the agent's own);
    a conversation send always streams (0.16.8 never ends a plain one's run). With `background` (Redis servers) the
    run goes on without this request, a dropped stream is re-attached where it stopped, and `background.attach`
    re-attaches to the run of the message's otid instead of sending (a restarted bridge). A group send cut short
    leaves `left` for the next send to one of its members to wait on (LettaClient.stream_group). `watch` is the
    tool calls seen so far: a call made before an approval is answered in the decision's send.
    """
    kind = "groups" if group is not None else "conversations" if conversation is not None else "agents"
    notes = NoteTaker()
    questions = Questions()
    steps: dict[str, str] = {}
    watch = ToolWatch() if watch is None else watch
    if (streaming or conversation is not None) and kind not in client.no_stream_route:
        collector = Collector(author, tokens=tokens)
        received = False
        last: object = None  # the last event: a token of an answer still being written, when the stream breaks
        reattached = 0  # re-attaches in a row that brought no event
        dropped: LettaError | None = None  # the cut a re-attach began after
        if group is not None:
            source = client.stream_group(group[0], group[1], message, tokens=tokens, left=left)
        elif conversation is not None and background is not None and background.attach:
            source = client.resume_conversation(conversation, str(message.get("otid")), agent_id)
        elif conversation is not None:
            source = client.stream_conversation(
                conversation, message, tokens=tokens, agent_id=agent_id, background=background is not None
            )
        else:
            assert agent_id is not None
            source = client.stream_agent(agent_id, message, tokens=tokens)
        while True:
            try:
                async for item in source:
                    received = True
                    # A failing stop reason or a ping says nothing of whether the words before it were complete; a
                    # normal stop reason says they were.
                    if not isinstance(item, (StopReason, Ping, UsageStatistics)) or (
                        isinstance(item, StopReason) and stop_failure(item.stop_reason) is None
                    ):
                        last = item
                    reattached, dropped = 0, None  # a re-attach that brings events was taken
                    if background is not None:
                        background.saw(item)
                    notes.add(item, getattr(item, "name", None) or author)
                    _step(steps, item, author)
                    if tools is not None:
                        for who, progress in watch.add(item, getattr(item, "name", None) or author):
                            await tools(who, progress)
                    for spoken in collector.add(item):
                        yield Said(*spoken, notes.pop(spoken[0]), steps.pop(spoken[0], ""))
                    questions.add(item)
                    growing = collector.growing
                    if draft is not None and growing is not None and growing[1].strip():
                        await draft(*growing)
            except LettaError as error:
                if (
                    received
                    and error.outcome_unknown
                    and background is not None
                    and background.run_id
                    and reattached < len(REATTACH_PAUSES)
                ):
                    # The connection dropped, not the run: pick its stream up after the last event received.
                    assert conversation is not None
                    dropped = dropped or error
                    await asyncio.sleep(REATTACH_PAUSES[reattached])
                    reattached += 1
                    log.info("letta stream dropped, re-attaching run_id=%s after=%s attempt=%d", background.run_id,
                             background.seq_id, reattached)
                    source = client.resume_conversation(
                        conversation, str(message.get("otid")), agent_id, starting_after=background.seq_id
                    )
                    continue
                if not received and error.kind == Kind.ROUTE_MISSING and kind != "conversations":
                    client.no_stream_route.add(kind)
                    log.info("letta has no %s stream route; using the plain send from now on", kind)
                    break
                if not received:
                    raise
                if dropped is not None:
                    # The re-attach was refused (or a gateway answered it 5xx till the pauses ran out), not the run:
                    # the cut is what happened to the send (the runner reads the reply from history once the run is
                    # over), not the refusal's words.
                    log.info("letta re-attach refused (%s); the stream stays cut", error.kind)
                    error = dropped
                # A token stream broken in the middle of an answer: its words so far are marked as cut off, never
                # passed off as the whole answer (Letta keeps nothing of a step that failed).
                cut = collector.growing is not None and isinstance(last, AssistantMessage)
                for author, text in collector.finish():
                    text = text + CUT_OFF if cut and text else text
                    yield Said(author, text, notes.pop(author), steps.pop(author, ""))
                for question in questions.done():
                    yield question
                yield error
                return
            for spoken in collector.finish():
                yield Said(*spoken, notes.pop(spoken[0]), steps.pop(spoken[0], ""))
            for question in questions.done():
                yield question
            return
    if group is not None:
        response = await client.send_group(group[0], group[1], message, left)
    elif conversation is not None:
        response = await client.send_conversation(conversation, message, agent_id)
    else:
        assert agent_id is not None
        response = await client.send_agent(agent_id, message)
    for item in response.messages:
        notes.add(item, getattr(item, "name", None) or author)
        _step(steps, item, author)
    for spoken_author, text in authored_replies(response, author):
        yield Said(spoken_author, text, notes.pop(spoken_author), steps.pop(spoken_author, ""))
    for item in response.messages:
        questions.add(item)
    for question in questions.done():
        yield question
    failed = run_error(response, client.base_url)
    if failed is not None:
        yield failed
