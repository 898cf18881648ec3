"""The Letta REST API as the bridge uses it: health, agents and groups, conversations, sends (streamed or not),
runs, cancels and feedback. Its HTTP, errors and retries are `transport.py`'s."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from datetime import datetime
from typing import Any, Literal, cast

from bridge.letta import gateways
from bridge.letta.active_runs import CLOCK_SLACK, ActiveRuns, created
from bridge.letta.active_runs import DEFAULT_CONVERSATION as DEFAULT_CONVERSATION
from bridge.letta.errors import Kind, LettaError
from bridge.letta.left_runs import runs_ended
from bridge.letta.locks import LeftGoing, held_by_turn
from bridge.letta.models import (
    AGENT_LIST,
    CONVERSATION_LIST,
    GROUP_LIST,
    MESSAGE_LIST,
    Agent,
    Conversation,
    Group,
    Health,
    LettaMessage,
    LettaResponse,
)
from bridge.letta.own_runs import OwnSend, own_send
from bridge.letta.paging import LIST_CAP, PAGE_SIZE, every

log = logging.getLogger(__name__)
RUN_LOOKUP_SECONDS = 5.0  # a Stop's look for its send's run by otid (within stopping.CANCEL_DEADLINE)

class LettaClient(ActiveRuns):
    app_server = False  # a Letta App Server behind this face (bridge/letta/appserver_letta.py)
    kind_guessed = False  # a stand-in for a server that did not answer when asked its kind (kind_untold.py)

    async def health(self) -> Health:
        return await self._get("/v1/health/", Health)

    async def get_agent(self, agent_id: str) -> Agent:
        return await self._get(f"/v1/agents/{agent_id}", Agent)

    async def get_group(self, group_id: str) -> Group:
        return await self._get(f"/v1/groups/{group_id}", Group)

    async def list_agents(self, limit: int = 50, after: str | None = None) -> list[Agent]:
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        payload = await self._request("GET", "/v1/agents/", params=params)
        return self._validate_list(payload, AGENT_LIST)

    async def list_groups(self, limit: int = 50, after: str | None = None) -> list[Group]:
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        payload = await self._request("GET", "/v1/groups/", params=params)
        return self._validate_list(payload, GROUP_LIST)

    async def history(self, agent_id: str, limit: int = 100, before: str | None = None) -> list[LettaMessage]:
        params: dict[str, Any] = {"limit": limit}
        if before:
            params["before"] = before
        payload = await self._request("GET", f"/v1/agents/{agent_id}/messages", params=params)
        return self._validate_list(payload, MESSAGE_LIST)

    async def has_conversations(self) -> bool:
        """Whether the server has conversations (0.16.8, Cloud): the list route answers, or is missing (404)."""
        if self.conversations is None:
            try:
                self._validate_list(
                    await self._request("GET", "/v1/conversations/", params={"limit": 1}), CONVERSATION_LIST
                )
            except LettaError as error:
                if error.kind != Kind.ROUTE_MISSING:
                    raise
                self.conversations = False
            else:
                self.conversations = True
        return self.conversations

    async def create_conversation(self, agent_id: str, summary: str | None = None) -> Conversation:
        """A new thread on the agent; a server without the route is remembered (ROUTE_MISSING is raised)."""
        body = {"summary": summary} if summary else {}
        try:
            payload = await self._request("POST", "/v1/conversations/", params={"agent_id": agent_id}, json=body)
        except LettaError as error:
            if error.kind == Kind.ROUTE_MISSING:
                self.conversations = False
            raise
        made = self._validate(payload, Conversation)
        self.locks.quiet(made.id)  # new: no run of an earlier send can be going in it
        return made

    async def delete_conversation(self, conversation_id: str) -> None:
        """Delete a conversation (200 null; an unknown one raises LettaError NOT_FOUND)."""
        await self._request("DELETE", f"/v1/conversations/{conversation_id}")

    async def made_conversation(self, agent_id: str, summary: str, since: datetime) -> Conversation | None:
        """The agent's conversation with this summary made no earlier than `since` (less the clocks' slack), newest
        first: one whose creation answer was lost on the way back (a gateway's 524) may have been made all the same."""
        payload = await self._request("GET", "/v1/conversations/", params={"agent_id": agent_id, "limit": PAGE_SIZE})
        for conversation in self._validate_list(payload, CONVERSATION_LIST):
            made = created({"created_at": conversation.created_at})
            if conversation.summary == summary and made is not None and made >= since - CLOCK_SLACK:
                return conversation
        return None

    async def conversation_history(
        self, conversation_id: str, limit: int = 100, before: str | None = None, agent_id: str | None = None
    ) -> list[LettaMessage]:
        """One thread's messages, the newest `limit` before `before`, oldest first (as `history` lists them);
        `default` with `agent_id` is the agent's own thread."""
        params: dict[str, Any] = {"limit": limit, "order": "desc"}
        if before:
            params["before"] = before
        if agent_id and conversation_id == DEFAULT_CONVERSATION:
            params["agent_id"] = agent_id
        payload = await self._request("GET", f"/v1/conversations/{conversation_id}/messages", params=params)
        page = self._validate_list(payload, MESSAGE_LIST)
        # A named conversation lists `desc` newest first; 0.16.8's `default` thread lists oldest first whatever the
        # order (reference §19, visible-conversations-default-history-during-send): go by the dates.
        if conversation_id != DEFAULT_CONVERSATION:
            return page[::-1]
        dates = [d for d in (getattr(m, "date", None) for m in page) if d is not None]
        return page[::-1] if len(dates) > 1 and dates[0] > dates[-1] else page

    async def send_conversation(
        self, conversation_id: str, message: dict[str, Any], agent_id: str | None = None
    ) -> LettaResponse:
        """A plain (not streamed) conversation send. 0.16.8 never ends such a send's run (reference §19), which
        would make the send look as if it were still running: the runners stream to conversations."""
        body = self._conversation_body(conversation_id, message, agent_id, streaming=False)
        async with self._one_send(agent_id, conversation_id, [_lock_key(conversation_id, agent_id)]):
            payload = await self._send(f"/v1/conversations/{conversation_id}/messages", body)
        return self._validate(payload, LettaResponse)

    async def stream_conversation(
        self,
        conversation_id: str,
        message: dict[str, Any],
        tokens: bool = False,
        agent_id: str | None = None,
        background: bool = False,
    ) -> AsyncIterator[LettaMessage]:
        """A streamed conversation send (`default` + `agent_id`: the agent's own thread). With `background` the run
        goes on without this request, and `resume_conversation` re-attaches to it by its otid (Redis servers)."""
        body = self._conversation_body(conversation_id, message, agent_id, streaming=True)
        if tokens:
            body["stream_tokens"] = True
        if background:
            body["background"] = True
        keys = [_lock_key(conversation_id, agent_id)]
        async with self._one_send(agent_id, conversation_id, keys):
            while True:
                received = False
                own = own_send(keys, message, conversation_id if "background" in body else None)
                try:
                    async for item in self._stream(f"/v1/conversations/{conversation_id}/messages", body):
                        received = True
                        own.saw(item)
                        yield item
                    return
                except LettaError as error:
                    if received or "background" not in body or not error.background_refused:
                        raise
                    # Known to keep background runs when first asked, restarted without Redis since: nothing ran.
                    # Every later send goes without, and this one goes again at once.
                    self.resumable = False
                    del body["background"]
                    log.warning("letta refused a background run (it has no Redis now): sent without, from now on")

    async def cancel_agent(self, agent_id: str, sends: Sequence[OwnSend] = ()) -> dict[str, str]:
        """Cancel the agent's active runs outside every conversation (POST /v1/agents/{id}/messages/cancel):
        {run id: "cancelled"}, or {} when none is running (409). A model call in flight is not interrupted: the
        run ends after it. Where the server has conversations the route, asked for no run, would cancel every run
        of the agent outside them, another client's too: only the runs `sends` made are named (own_runs.py), a send
        that reported none yet found by its otid where the server can tell; none known, nothing is cancelled."""
        path = f"/v1/agents/{agent_id}/messages/cancel"
        if not await self.has_conversations():
            return await self._cancel(path)
        own: list[str] = []
        for send in sends:
            found: set[str | None] = set(send.runs) or {await self.run_of(send.conversation, send.otid, agent_id)}
            if not any(found):  # its run not known yet: cancelled once its first event names it
                send.cancel_when_reported(lambda run: self._cancel(path, {"run_ids": [run]}))
            own.extend(run for run in found if run and run not in own)
        if not own:
            return {}
        answer = await self._cancel(path, {"run_ids": own})
        return {run: state for run, state in answer.items() if state == "cancelled"}

    async def cancel_agent_outside_conversations(self, agent_id: str) -> dict[str, str]:
        """Every active run of the agent outside its conversations, another client's too: only for a killed
        process's send whose run was never journaled (stopping.py), where nothing else can name it."""
        return await self._cancel(f"/v1/agents/{agent_id}/messages/cancel")

    async def run_of(self, conversation_id: str | None, otid: str | None, agent_id: str | None = None) -> str | None:
        """The run of the background send that carried `otid` in the conversation, as its resumed stream's first
        event names it (Redis servers); None where the server cannot tell (no otid, no Redis, no such run). Not
        under the send lock: the send it looks for holds it. Asks has_resume itself: a process just started ends a
        dead one's Stop before it sends anything."""
        if conversation_id is None or otid is None:
            return None
        body: dict[str, Any] = {"otid": otid}
        if agent_id and conversation_id == DEFAULT_CONVERSATION:
            body["agent_id"] = agent_id
        try:
            async with asyncio.timeout(RUN_LOOKUP_SECONDS):
                if not await self.has_resume():
                    return None
                stream = self._stream(f"/v1/conversations/{conversation_id}/stream", body)
                async with aclosing(cast(AsyncGenerator[LettaMessage, None], stream)) as events:
                    async for item in events:
                        if run_id := getattr(item, "run_id", None):
                            return str(run_id)
        except (LettaError, TimeoutError) as error:
            log.info("letta run not found by its otid otid=%s error=%s", otid, type(error).__name__)
        return None

    async def cancel_conversation(self, conversation_id: str, agent_id: str | None = None) -> dict[str, str]:
        """Cancel the conversation's active run (POST /v1/conversations/{id}/cancel); as `cancel_agent`. `agent_id`
        (the conversation's agent) is for servers that address a conversation with its agent."""
        return await self._cancel(f"/v1/conversations/{conversation_id}/cancel")

    async def _cancel(self, path: str, body: dict[str, Any] | None = None) -> dict[str, str]:
        try:
            payload = await self._request("POST", path, json=body)
        except LettaError as error:
            if error.status == 409:  # "No active runs to cancel"
                return {}
            raise
        return {str(k): str(v) for k, v in payload.items()} if isinstance(payload, dict) else {}

    async def step_feedback(self, step_id: str, vote: Literal["up", "down"]) -> None:
        """A person's vote on the step that produced a reply (PATCH /v1/steps/{id}/feedback, 0.16.8 and Cloud); a
        later vote replaces the earlier one. An unknown step raises LettaError (404)."""
        body: dict[str, Any] = {"feedback": "positive" if vote == "up" else "negative", "tags": []}
        await self._request("PATCH", f"/v1/steps/{step_id}/feedback", json=body)

    async def resume_conversation(
        self, conversation_id: str, otid: str, agent_id: str | None = None, starting_after: int | None = None
    ) -> AsyncIterator[LettaMessage]:
        """The events of the background run that carried `otid`, finished or not (from the first, or after
        `seq_id` `starting_after`). A 404 (Kind.NOT_FOUND) means no run ever carried it."""
        body: dict[str, Any] = {"otid": otid}
        if agent_id and conversation_id == DEFAULT_CONVERSATION:
            body["agent_id"] = agent_id
        if starting_after is not None:
            body["starting_after"] = starting_after
        keys = [_lock_key(conversation_id, agent_id)]
        async with self.locks.hold(keys):
            with held_by_turn(keys):
                own = own_send(keys, body, conversation_id)
                async for item in self._stream(f"/v1/conversations/{conversation_id}/stream", body):
                    own.saw(item)
                    yield item

    async def has_resume(self) -> bool:
        """Whether the server keeps background runs resumable (0.16.8 with Redis, Letta Cloud): its resume route
        answers anything but Letta's 503 (no Redis) or a missing route. Any other 5xx or 408 decides nothing
        (raised as SERVER_ERROR, or a gateway's answer as what it proves: the caller may ask again); a refused
        key, quota or rate (401, 402, 403, 429) is raised as what it is, its Retry-After read."""
        if self.resumable is None:
            if not await self.has_conversations():
                self.resumable = False
                return False
            # A probe, not a failure: asked outside `_request`, so that its expected 503 is neither logged as an
            # error nor counted in the metrics.
            path = f"/v1/conversations/{DEFAULT_CONVERSATION}/stream"
            answer = await self._probe("POST", path, json={})
            status, body = answer.status, answer.text
            if status in (401, 402, 403, 429) or 300 <= status < 400:  # the key, its quota, its rate, a redirect:
                raise self._error_for(answer, "", "POST", path)  # said as what it is, nothing decided
            if (status >= 500 or status == 408) and not (status == 503 and "Redis" in body):
                # A gateway's or an overloaded server's answer, not the route's: asked again next time. Kept, it would
                # decide every later send (and the otid each is looked up by after a restart). A gateway's own answer
                # is said as what it is (Envoy's `no healthy upstream`: Letta was not reached).
                if gateways.read(status, answer.headers, body[:2000]) is not None:
                    raise self._error_for(answer, "", "POST", path)
                raise LettaError(Kind.SERVER_ERROR, "the resume route did not answer", status=status,
                                 base_url=self.base_url)
            self.resumable = status not in (503, 404, 405)
            log.info("letta background runs resumable=%s", self.resumable)
        return self.resumable

    @staticmethod
    def _conversation_body(
        conversation_id: str, message: dict[str, Any], agent_id: str | None, streaming: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": [message], "streaming": streaming}
        if conversation_id == DEFAULT_CONVERSATION:
            body["agent_id"] = agent_id
        return body

    async def all_groups(self, cap: int = LIST_CAP) -> list[Group]:
        """Every group, page by page (`after` = the last id), up to `cap`."""
        return await every(self.list_groups, cap)

    async def all_agents(self, cap: int = LIST_CAP) -> list[Agent]:
        """Every agent, page by page, up to `cap`."""
        return await every(self.list_agents, cap)

    async def send_agent(self, agent_id: str, message: dict[str, Any]) -> LettaResponse:
        async with self._one_send(agent_id, None, [agent_id]):
            payload = await self._send(f"/v1/agents/{agent_id}/messages", {"messages": [message]})
        return self._validate(payload, LettaResponse)

    async def send_group(
        self, group_id: str, member_ids: list[str], message: dict[str, Any], left: LeftGoing | None = None
    ) -> LettaResponse:
        """`left`: how a later send to a member waits for this one's end, should it be cut short (a group send lists
        no run for `runs_ended` to wait on)."""
        async with self._one_send(None, None, member_ids, left):
            payload = await self._send(f"/v1/groups/{group_id}/messages", {"messages": [message]})
        return self._validate(payload, LettaResponse)

    async def stream_agent(
        self, agent_id: str, message: dict[str, Any], tokens: bool = False
    ) -> AsyncIterator[LettaMessage]:
        body: dict[str, Any] = {"messages": [message]}
        if tokens:
            body["stream_tokens"] = True
        async with self._one_send(agent_id, None, [agent_id]):
            own = own_send([agent_id], message)
            async for item in self._stream(f"/v1/agents/{agent_id}/messages/stream", body):
                own.saw(item)
                yield item

    async def stream_group(
        self,
        group_id: str,
        member_ids: list[str],
        message: dict[str, Any],
        tokens: bool = False,
        left: LeftGoing | None = None,
    ) -> AsyncIterator[LettaMessage]:
        body: dict[str, Any] = {"messages": [message]}
        if tokens:
            body["stream_tokens"] = True
        async with self._one_send(None, None, member_ids, left):
            own = own_send(member_ids, message)
            async for item in self._stream(f"/v1/groups/{group_id}/messages/stream", body):
                own.saw(item)
                yield item

    @asynccontextmanager
    async def _one_send(
        self, agent_id: str | None, conversation_id: str | None, keys: list[str], left: LeftGoing | None = None
    ) -> AsyncIterator[None]:
        """Held around each send: its keys' locks, and before it is made, the runs of a key no send of this process
        has ended under waited out (an earlier process's send, killed or stopped mid-send, which Letta runs on:
        two at once would mix their contexts). Without `agent_id` the keys are agents (a group's members). A send
        cut short that lists no run leaves `left` for the next send under its keys to wait on."""
        async with self.locks.hold(keys):
            with held_by_turn(keys):
                unsure = self.locks.unsure(keys)
                waited: set[LeftGoing] = set()
                for key in unsure:
                    going = self.locks.left_going(key)
                    if going is not None and going not in waited:
                        waited.add(going)
                        await going()
                    if key != conversation_id:  # an agent's key: its runs outside every conversation
                        await runs_ended(self.active_runs, key, None, self.busy_wait)
                    elif agent_id is not None:
                        await runs_ended(self.active_runs, agent_id, conversation_id, self.busy_wait)
                if unsure:
                    self.locks.go_on()  # a process frozen in that wait may have lost the binding meanwhile
                try:
                    yield
                except BaseException as exc:
                    ran = left if left is not None and _may_run_on(exc) else None
                    for key in keys:
                        self.locks.unsettle(key, ran)
                    raise
                for key in keys:
                    self.locks.quiet(key)


def _may_run_on(error: BaseException) -> bool:
    """Whether Letta may have the send that failed with `error` running: not when it refused it (an answer with
    a status, before anything ran)."""
    return not isinstance(error, LettaError) or error.outcome_unknown


def _lock_key(conversation_id: str, agent_id: str | None) -> str:
    """The agent's own thread shares the agent's lock with the agent routes; a conversation has its own."""
    return agent_id if conversation_id == DEFAULT_CONVERSATION and agent_id else conversation_id
