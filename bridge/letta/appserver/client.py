"""`AppServerClient`: what the bridge asks of a Letta App Server, over the one socket of `socket.py`.

Failures are `LettaError`s of the kinds in `bridge/letta/errors.py`, so the rest of the bridge words them as it
does for the REST servers. Sends are never repeated here: the App Server has no idempotency (the same
`client_message_id` twice runs twice, README §5), so a send whose outcome is unknown is looked up in the
conversation's history by its otid (`find_send`) before anyone sends it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from bridge import __version__
from bridge.domain import AgentInfo, Image
from bridge.keyed_locks import KeyedLocks
from bridge.letta.appserver import outgoing, probe, wire
from bridge.letta.appserver.probe import ServerInfo, endpoints
from bridge.letta.appserver.socket import AppServerSocket, Dropped, Subscription
from bridge.letta.appserver.turn import Finished, TurnEvent, TurnReader, denial, plain, question
from bridge.letta.appserver.withdraw import Sent, ended, withdraw
from bridge.letta.errors import ENV_KEY, KeyOrigin, Kind, LettaError
from bridge.letta.paging import every
from bridge.letta.wire import image_part

log = logging.getLogger(__name__)

A = TypeVar("A", bound=wire.Answer)
Written = Callable[[int], None]

PAGE = 20  # agent_list's own default (README §3)
HISTORY_PAGE = 50
HISTORY_PAGES = 20
DENIED = (
    "Tools are turned off for this Slack channel, so this one was not run. Answer without it, or say what you "
    "would need."
)


@dataclass(frozen=True)
class FoundSend:
    """A send found in a conversation's history by its otid; `replies` are what the agent answered after it
    (maybe nothing yet, or a truncated reply of a turn the server cancelled)."""

    message_id: str | None
    replies: tuple[str, ...]


class AppServerClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        request_timeout: float = 15.0,
        connect_timeout: float = 10.0,
        tools: bool = False,
        abort_wait: float = 5.0,
        backoff_base: float = 0.5,
        heartbeat: float | None = 30.0,
        key_origin: KeyOrigin = ENV_KEY,
    ) -> None:
        self.http_url, ws_url = endpoints(base_url)
        self.base_url = base_url
        self._api_key = api_key
        self.key_origin = key_origin
        self.tools = tools  # off unless an operator turns them on
        self.abort_wait = abort_wait
        self.socket = AppServerSocket(
            ws_url,
            api_key,
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
            backoff_base=backoff_base,
            heartbeat=heartbeat,
            key_origin=key_origin,
        )
        self._locks = KeyedLocks()  # one send per conversation at a time; none kept for idle ones
        self._sending: dict[str, Sent] = {}  # conversation -> the input this process has in flight there
        # Conversations whose input was taken back while its model call went on past `abort_wait`: the server runs
        # the next input there only once that call returns (a hung model: never), so the thread leaves them.
        self._left_busy: set[str] = set()
        self._standard: set[tuple[int, str]] = set()  # (connection, conversation) put in `standard` mode

    async def aclose(self, wait: float = 0.0, force: bool = False) -> None:
        """Close the socket once no turn runs (see `AppServerSocket.close`)."""
        await self.socket.close(wait, force)

    # ------------------------------------------------------------ the server

    async def describe(self) -> ServerInfo:
        """What the server says it is: `GET /app-server-info` over HTTP, not the socket (probe.py)."""
        return await probe.describe(
            self.http_url, self._api_key, self.socket.request_timeout, self.base_url, self.key_origin
        )

    # ------------------------------------------------------------ agents

    async def list_agents(self, limit: int = PAGE, after: str | None = None) -> list[AgentInfo]:
        query: dict[str, Any] = {"limit": limit}
        if after:
            query["after"] = after
        answer = await self._ask(outgoing.AgentList(query=query), wire.AgentListResponse)
        return [AgentInfo(a.id, a.name, a.description or "") for a in answer.agents]

    async def retrieve_agent(self, agent_id: str) -> AgentInfo:
        """One agent by its id, however many the server has (an unknown id: Kind.NOT_FOUND)."""
        answer = await self._ask(outgoing.AgentRetrieve(agent_id=agent_id), wire.AgentRetrieveResponse)
        if answer.agent is None:
            raise LettaError(Kind.NOT_FOUND, f"Agent {agent_id} not found", base_url=self.base_url)
        return AgentInfo(answer.agent.id, answer.agent.name, answer.agent.description or "")

    async def all_agents(self, cap: int = 500) -> list[AgentInfo]:
        """Page by `after` = the last id until a short page (the answer names no cursor, README §3)."""
        return await every(self.list_agents, cap)

    # ------------------------------------------------------------ conversations

    async def create_conversation(self, agent_id: str, thread_key: str) -> wire.Conversation:
        """A conversation of its own for one Slack thread, its key in `summary` so the map can be rebuilt.
        0.34.12 stores a summary given at creation; where one is not (0.32.18 was not seen to), it is set after."""
        body = {"agent_id": agent_id, "summary": thread_key}
        made = await self._ask(outgoing.ConversationCreate(body=body), wire.ConversationResponse)
        conversation = _conversation(made, self.base_url)
        if conversation.summary != thread_key:
            update = outgoing.ConversationUpdate(conversation_id=conversation.id, body={"summary": thread_key})
            conversation = _conversation(await self._ask(update, wire.ConversationResponse), self.base_url)
        return conversation

    async def list_conversations(self, agent_id: str) -> list[wire.Conversation]:
        """The agent's conversations, most recently updated first (`default` is never listed)."""
        answer = await self._ask(outgoing.ConversationList(query={"agent_id": agent_id}), wire.ConversationListResponse)
        return answer.conversations

    async def find_conversation(self, agent_id: str, thread_key: str) -> wire.Conversation | None:
        """The thread's conversation by the key in its summary (there is no lookup by key on the server)."""
        found = [c for c in await self.list_conversations(agent_id) if c.summary == thread_key]
        return found[0] if found else None

    # ------------------------------------------------------------ one message, streamed

    async def send(
        self,
        agent_id: str,
        conversation_id: str,
        text: str,
        otid: str,
        deadline: float | None = None,
        tools: bool | None = None,
        images: Sequence[Image] = (),
    ) -> AsyncGenerator[TurnEvent, None]:
        """Send `text` to one agent's conversation and yield the turn's events, the last one `Finished`.

        Raises LettaError only when the server never took the message (or its answer was lost: TIMEOUT /
        DISCONNECTED, outcome unknown: look it up with `find_send`; one it may still run is taken back first).
        One send per conversation at a time from this process. Past `deadline` seconds the message is taken back
        (withdraw.py) and the turn ends with a TIMEOUT error (the server retries a failing model for about 35 s
        and waits on a hanging one for over an hour). With `tools` (the client's own setting when None) the
        conversation runs in `standard` mode and a tool that is not read-only is a `ToolAsked`, answered with
        `answer` before the next event is read; the time the caller takes to answer does not count against
        `deadline`. `images` go as content parts after the text; one the server cannot decode is dropped, never
        the text with it.
        """
        if conversation_id == "default":
            raise LettaError(Kind.INVALID, "the bridge never uses an agent's default conversation")
        tools = self.tools if tools is None else tools
        runtime = wire.Runtime(agent_id=agent_id, conversation_id=conversation_id)
        async with self._locks.hold(conversation_id), self.socket.subscribe(runtime, turn=True) as subscription:
            if tools:
                await self._standard_mode(runtime)
            content: str | list[dict[str, Any]] = text
            if images:
                content = [{"type": "text", "text": text}, *(image_part(i) for i in images)]
            payload = outgoing.CreateMessage(
                messages=[outgoing.OutgoingMessage(content=content, client_message_id=otid)],
                client_tool_allowlist=None if tools else [],
                image_failure_mode="drop" if images else None,
            )
            frame = outgoing.Input(request_id=self.socket.new_id("input"), runtime=runtime, payload=payload)
            sent = self._sending[conversation_id] = Sent(runtime, otid, frame.request_id or "")
            subscription.watch = sent.see  # told of every frame of the conversation as it arrives, read or not
            try:
                async for event in self._turn(sent, frame, subscription, tools, deadline):
                    yield event
            finally:
                self._sending.pop(conversation_id, None)

    async def _turn(
        self, sent: Sent, frame: outgoing.Input, subscription: Subscription, tools: bool, deadline: float | None
    ) -> AsyncGenerator[TurnEvent, None]:
        runtime = sent.runtime
        try:
            accepted = await self._ask(frame, wire.InputAccepted, written=sent.sent_on)
        except (LettaError, asyncio.CancelledError) as failed:  # given up waiting: the server may run it still
            if not isinstance(failed, LettaError) or failed.kind == Kind.TIMEOUT:
                await asyncio.shield(self._stop(sent, within=self.socket.request_timeout))
            raise
        sent.accept(accepted)
        connection = self.socket.connections  # the turn lives on this connection; an older drop is past
        if not accepted.accepted:
            raise LettaError(Kind.INVALID, plain(accepted.error) or "input refused", base_url=self.base_url)
        reader = TurnReader(sent.otid, queued=accepted.disposition == "queued", base_url=self.base_url)
        loop = asyncio.get_running_loop()
        ends = None if deadline is None else loop.time() + deadline
        finished = False
        try:
            while True:
                left = None if ends is None else max(0.0, ends - loop.time())
                try:
                    item = await subscription.next(left)
                except TimeoutError:
                    finished = True
                    await self._stop(sent)
                    detail = f"no answer within {deadline or 0:.0f} s; the bridge stopped it"
                    error = LettaError(Kind.TIMEOUT, detail, base_url=self.base_url)
                    error.withdrawn = True
                    yield Finished(None, reader.finish(None).replies, None, error)
                    return
                if isinstance(item, Dropped) and item.connection < connection:
                    continue
                if isinstance(item, Dropped):
                    error = LettaError(Kind.DISCONNECTED, item.reason, base_url=self.base_url)
                    finished = True
                    yield Finished(None, reader.finish(None).replies, None, error)
                    return
                if isinstance(item, wire.ControlRequest) and not tools:
                    yield await self._deny(runtime, item)
                    continue
                if isinstance(item, wire.ControlRequest):
                    paused = loop.time()
                    yield question(item, sent.ended)  # the caller answers it before asking for the next event
                    ends = None if ends is None else ends + loop.time() - paused
                    continue
                if isinstance(item, wire.ExternalToolCallRequest):
                    await self._refuse_external(item)
                    continue
                for event in reader.feed(item):
                    finished = finished or isinstance(event, Finished)
                    yield event
                    if finished:
                        return
        finally:
            if not finished:  # the caller stopped reading (cancelled): stop the server's turn too
                await asyncio.shield(self._stop(sent))

    async def _stop(self, sent: Sent, within: float | None = None) -> bool:
        """Take the input back (withdraw.py; `within`: how long the server may take to say what became of it),
        then give its turn `abort_wait` seconds to end (when the model call in flight returns), so that the socket
        is not closed under it."""
        within = self.abort_wait if within is None else within
        withdrawn = await withdraw(sent, self._ask, self.socket.new_id, within, self.abort_wait)
        await ended(sent, self.abort_wait)
        if sent.written and not (sent.finished or sent.dropped or sent.accepted is False):
            log.info("app server: conversation=%s still runs a taken-back input; the thread's next send goes to a "
                     "new one", sent.runtime.conversation_id)
            self._left_busy.add(sent.runtime.conversation_id)
        return withdrawn

    def left_busy(self, conversation_id: str) -> bool:
        """Whether the conversation still ran an input this process took back when it let go (asked once)."""
        busy = conversation_id in self._left_busy
        self._left_busy.discard(conversation_id)
        return busy

    async def _standard_mode(self, runtime: wire.Runtime) -> None:
        """With tools allowed, a conversation runs in `standard` mode: a tool that is not read-only asks first."""
        key = (self.socket.connections, runtime.conversation_id)
        if key in self._standard:
            return
        start = outgoing.RuntimeStart(
            request_id=self.socket.new_id("runtime"),
            agent_id=runtime.agent_id,
            conversation_id=runtime.conversation_id,
            mode="standard",
            client_info={"name": "letta-slack-bridge", "version": __version__},
        )
        await self._ask(start, wire.RuntimeStartResponse)
        self._standard.add((self.socket.connections, runtime.conversation_id))

    async def answer(
        self, agent_id: str, conversation_id: str, request_id: str, allow: bool, reason: str
    ) -> str | None:
        """Answer a `ToolAsked` (`approval_response`, README section 7); None when the server took it, else its
        words (a request no longer pending: "Approval request is no longer pending")."""
        runtime = wire.Runtime(agent_id=agent_id, conversation_id=conversation_id)
        decision = outgoing.ApprovalDecision(behavior="allow" if allow else "deny", message=None if allow else reason)
        answer = outgoing.ApprovalResponse(request_id=request_id, decision=decision)
        frame = outgoing.Input(request_id=self.socket.new_id("approval"), runtime=runtime, payload=answer)
        accepted = await self._ask(frame, wire.InputAccepted)
        return None if accepted.accepted else plain(accepted.error) or "refused"

    async def _deny(self, runtime: wire.Runtime, request: wire.ControlRequest) -> TurnEvent:
        """With tools off, a tool that asks anyway is refused, with a reason the model can use."""
        if request.request_id:
            decision = outgoing.ApprovalDecision(behavior="deny", message=DENIED)
            answer = outgoing.ApprovalResponse(request_id=request.request_id, decision=decision)
            frame = outgoing.Input(request_id=self.socket.new_id("approval"), runtime=runtime, payload=answer)
            with contextlib.suppress(LettaError):
                await self.socket.send(frame.dump())
        return denial(request, DENIED)

    async def _refuse_external(self, request: wire.ExternalToolCallRequest) -> None:
        if request.request_id:
            frame = outgoing.ExternalToolCallResponse(request_id=request.request_id, error="not available from Slack")
            with contextlib.suppress(LettaError):
                await self.socket.send(frame.dump())

    # ------------------------------------------------------------ after the fact

    async def abort(self, agent_id: str, conversation_id: str) -> bool:
        """Take back this process's send in the conversation (a person's Stop, withdraw.py); False when nothing
        of it ran. With no send of ours there nothing is sent: an abort without a run id would stop whatever the
        conversation runs. The turn ends (`cancelled`) when the model call in flight returns (README §8)."""
        sent = self._sending.get(conversation_id)
        if sent is None or sent.runtime.agent_id != agent_id:
            return False
        return await withdraw(sent, self._ask, self.socket.new_id, self.abort_wait, self.abort_wait)

    async def history(
        self, conversation_id: str, limit: int = HISTORY_PAGE, before: str | None = None
    ) -> tuple[list[wire.Delta], str | None]:
        """One page of the conversation, newest first, and the `before` cursor of the next older page."""
        query: dict[str, Any] = {"order": "desc", "limit": limit}
        if before:
            query["before"] = before
        frame = outgoing.ConversationMessagesList(conversation_id=conversation_id, query=query)
        answer = await self._ask(frame, wire.MessagesListResponse)
        return list(answer.messages), (answer.next_before if answer.messages else None)

    async def find_send(self, conversation_id: str, otid: str) -> FoundSend | None:
        """The user message whose otid is the send's client_message_id, and the replies after it; None when
        the server never stored it (sending again is safe)."""
        newer: list[wire.Delta] = []  # oldest first: what came after the page being read
        before: str | None = None
        for _ in range(HISTORY_PAGES):
            page, before = await self.history(conversation_id, before=before)
            for index, message in enumerate(page):
                if isinstance(message, wire.UserDelta) and message.otid == otid:
                    later = [*reversed(page[:index]), *newer]
                    return FoundSend(message.id, _replies(later))
            newer = [*reversed(page), *newer]
            if before is None:
                break
        return None

    # ------------------------------------------------------------ plumbing

    async def _ask(
        self, frame: outgoing.Sent, answer: type[A], within: float | None = None, written: Written | None = None
    ) -> A:
        if frame.request_id is None:
            frame.request_id = self.socket.new_id(frame.type)
        got = await self.socket.request(frame.dump(), within, written)
        if not isinstance(got, answer):
            raise LettaError(Kind.BAD_RESPONSE, f"{got.type} answered {frame.type}", base_url=self.base_url)
        if got.success is False:
            said = plain(got.error) or "refused"
            kind = Kind.NOT_FOUND if said.endswith("not found") else Kind.INVALID
            raise LettaError(kind, said, base_url=self.base_url, request_id=frame.request_id)
        return got


def _replies(later: list[wire.Delta]) -> tuple[str, ...]:
    texts: list[str] = []
    for message in later:
        if isinstance(message, wire.UserDelta):
            break
        if isinstance(message, wire.AssistantDelta) and message.text.strip():
            texts.append(message.text.strip())
    return tuple(texts)


def _conversation(answer: wire.ConversationResponse, base_url: str) -> wire.Conversation:
    if answer.conversation is None:
        raise LettaError(Kind.BAD_RESPONSE, "no conversation in the answer", base_url=base_url)
    return answer.conversation

