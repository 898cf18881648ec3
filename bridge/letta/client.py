"""One `httpx.AsyncClient` per process; HTTP and transport failures become a few typed `LettaError`s.

Sends are never retried here: Letta does not deduplicate, so a retried send is a second turn.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

import httpx
from httpx_sse import aconnect_sse
from pydantic import BaseModel, TypeAdapter, ValidationError

from bridge import __version__
from bridge.letta.errors import Kind, LettaError
from bridge.letta.locks import AgentLocks
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
    parse_error,
    run_failure,
)
from bridge.letta.stream import messages as stream_messages
from bridge.letta.stream import sse_error_text

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
L = TypeVar("L")

MAX_RETRY_DELAY = 30.0
MAX_BUSY_DELAY = 5.0  # between looks at a conversation another run holds
DEFAULT_CONVERSATION = "default"  # with an agent_id: the agent's own thread, locked like a conversation (0.16.8)
RUNS_ROUTE_BELOW = (0, 12)  # servers below list active runs at /v1/runs/active?agent_ids=
CLOCK_SLACK = timedelta(seconds=30)  # between the bridge's clock and Letta's, when runs are compared to a send


class _Listed(Protocol):
    @property
    def id(self) -> str: ...


Item = TypeVar("Item", bound=_Listed)

# Enough for any menu Slack can show (100 options); a bigger server is listed in part, and says so.
LIST_CAP = 500
PAGE_SIZE = 100


# Idle connections kept for the next send. httpcore looks at every pooled connection (a syscall for each idle one)
# whenever a request needs one, so a pool that kept hundreds after a burst made each later send slower.
KEEPALIVE = 32


class LettaClient:
    app_server = False  # a Letta App Server behind this face (bridge/letta/appserver_letta.py)

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        project: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 300.0,
        send_retries: int = 3,
        retry_base: float = 1.0,
        max_connections: int = 100,
        busy_wait: float = 300.0,
    ) -> None:
        headers = {"User-Agent": f"letta-slack-bridge/{__version__}", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if project:
            headers["X-Project"] = project
        self.base_url = base_url.rstrip("/")
        self.locks = AgentLocks()
        self.send_retries = send_retries
        self.no_stream_route: set[str] = set()  # "agents" / "groups": the server answered 404/405 to /stream
        self.conversations: bool | None = None  # whether the server has /v1/conversations; None until asked
        self.resumable: bool | None = None  # background runs and stream resume (Redis, Cloud); None until asked
        self._legacy_runs: bool | None = None  # active runs at /v1/runs/active (below 0.12); None until asked
        self.retry_base = retry_base
        self.busy_wait = busy_wait
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            # httpx allows 100 connections by default, whatever MAX_CONCURRENT_TURNS says.
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=KEEPALIVE),
        )

    async def aclose(self, wait: float = 0.0) -> None:
        """Close the connections (`wait`: for clients whose closing cancels turns still running; REST's do not)."""
        await self._http.aclose()

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
        return self._validate(payload, Conversation)

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
        async with self.locks.hold([_lock_key(conversation_id, agent_id)]):
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
        async with self.locks.hold([_lock_key(conversation_id, agent_id)]):
            async for item in self._stream(f"/v1/conversations/{conversation_id}/messages", body):
                yield item

    async def cancel_agent(self, agent_id: str) -> dict[str, str]:
        """Cancel the agent's active runs (POST /v1/agents/{id}/messages/cancel): {run id: "cancelled"}, or {}
        when none is running (409). A model call in flight is not interrupted: the run ends after it."""
        return await self._cancel(f"/v1/agents/{agent_id}/messages/cancel")

    async def cancel_conversation(self, conversation_id: str, agent_id: str | None = None) -> dict[str, str]:
        """Cancel the conversation's active run (POST /v1/conversations/{id}/cancel); as `cancel_agent`. `agent_id`
        (the conversation's agent) is for servers that address a conversation with its agent."""
        return await self._cancel(f"/v1/conversations/{conversation_id}/cancel")

    async def _cancel(self, path: str) -> dict[str, str]:
        try:
            payload = await self._request("POST", path)
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
        async with self.locks.hold([_lock_key(conversation_id, agent_id)]):
            async for item in self._stream(f"/v1/conversations/{conversation_id}/stream", body):
                yield item

    async def has_resume(self) -> bool:
        """Whether the server keeps background runs resumable (0.16.8 with Redis, Letta Cloud): its resume route
        answers anything but 503 (no Redis) or a missing route."""
        if self.resumable is None:
            if not await self.has_conversations():
                self.resumable = False
                return False
            # A probe, not a failure: asked outside `_request`, so that its expected 503 is neither logged as an
            # error nor counted in the metrics.
            path = f"/v1/conversations/{DEFAULT_CONVERSATION}/stream"
            try:
                async with self._http.stream("POST", path, json={}) as response:
                    status = response.status_code
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise self._fail(Kind.UNREACHABLE, type(exc).__name__, None, "", "POST", path) from None
            except httpx.TransportError as exc:
                raise self._fail(Kind.DISCONNECTED, type(exc).__name__, None, "", "POST", path) from None
            if status in (401, 403):
                raise LettaError(Kind.UNAUTHORIZED, status=status, base_url=self.base_url)
            self.resumable = status not in (503, 404, 405)
            log.info("letta background runs resumable=%s", self.resumable)
        return self.resumable

    async def active_runs(
        self, agent_id: str, conversation_id: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The agent's runs that are still going (in `conversation_id`, or outside every conversation when None),
        created no earlier than `since` (less the clocks' slack): the ones a send made then could be.

        0.11.x lists them at `/v1/runs/active?agent_ids=`, later servers at `/v1/runs/?agent_id=&active=true`.
        """
        if self._legacy_runs is None:
            match = re.match(r"^v?(\d+)\.(\d+)", (await self.health()).version)
            self._legacy_runs = match is not None and (int(match[1]), int(match[2])) < RUNS_ROUTE_BELOW
        if self._legacy_runs:
            payload = await self._request("GET", "/v1/runs/active", params={"agent_ids": agent_id})
        else:
            params: dict[str, Any] = {"agent_id": agent_id, "active": "true", "limit": 100}
            if conversation_id not in (None, DEFAULT_CONVERSATION):
                params["conversation_id"] = conversation_id
            payload = await self._request("GET", "/v1/runs/", params=params)
        if not isinstance(payload, list):
            raise LettaError(Kind.BAD_RESPONSE, "the run list is not a list", base_url=self.base_url)
        runs = [r for r in payload if isinstance(r, dict) and r.get("status") in ("created", "running")]
        if not self._legacy_runs and conversation_id in (None, DEFAULT_CONVERSATION):
            runs = [r for r in runs if not r.get("conversation_id")]
        if since is not None:
            runs = [r for r in runs if (_created(r) or since) >= since - CLOCK_SLACK]
        return runs

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
        return await _every(self.list_groups, cap)

    async def all_agents(self, cap: int = LIST_CAP) -> list[Agent]:
        """Every agent, page by page, up to `cap`."""
        return await _every(self.list_agents, cap)

    async def send_agent(self, agent_id: str, message: dict[str, Any]) -> LettaResponse:
        async with self.locks.hold([agent_id]):
            payload = await self._send(f"/v1/agents/{agent_id}/messages", {"messages": [message]})
        return self._validate(payload, LettaResponse)

    async def send_group(self, group_id: str, member_ids: list[str], message: dict[str, Any]) -> LettaResponse:
        async with self.locks.hold(member_ids):
            payload = await self._send(f"/v1/groups/{group_id}/messages", {"messages": [message]})
        return self._validate(payload, LettaResponse)

    async def stream_agent(
        self, agent_id: str, message: dict[str, Any], tokens: bool = False
    ) -> AsyncIterator[LettaMessage]:
        body: dict[str, Any] = {"messages": [message]}
        if tokens:
            body["stream_tokens"] = True
        async with self.locks.hold([agent_id]):
            async for item in self._stream(f"/v1/agents/{agent_id}/messages/stream", body):
                yield item

    async def stream_group(
        self, group_id: str, member_ids: list[str], message: dict[str, Any], tokens: bool = False
    ) -> AsyncIterator[LettaMessage]:
        body: dict[str, Any] = {"messages": [message]}
        if tokens:
            body["stream_tokens"] = True
        async with self.locks.hold(member_ids):
            async for item in self._stream(f"/v1/groups/{group_id}/messages/stream", body):
                yield item

    async def _stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[LettaMessage]:
        """A streamed send; retried like `_send`, and only before anything has arrived."""
        attempt = 0
        waited = 0.0
        while True:
            request_id = uuid.uuid4().hex[:12]
            started = asyncio.get_running_loop().time()
            try:
                async with aconnect_sse(
                    self._http, "POST", path, json=body, headers={"X-Request-Id": request_id}
                ) as source:
                    response = source.response
                    log.info(
                        "letta stream method=POST path=%s status=%s ms=%.0f request_id=%s",
                        path,
                        response.status_code,
                        (asyncio.get_running_loop().time() - started) * 1000,
                        request_id,
                    )
                    if response.status_code >= 400:
                        await response.aread()
                        raise self._error_for(response, request_id, "POST", path)
                    if not response.headers.get("content-type", "").startswith("text/event-stream"):
                        # A proxy or server that answers the stream route with plain JSON.
                        await response.aread()
                        try:
                            answer = self._validate(response.json(), LettaResponse)
                        except ValueError:
                            raise self._fail(
                                Kind.BAD_RESPONSE, "not JSON", response.status_code, request_id, "POST", path
                            ) from None
                        for item in answer.messages:
                            yield item
                        failed = run_failure(answer)
                        if failed:
                            raise LettaError(Kind.RUN_FAILED, failed, base_url=self.base_url, request_id=request_id)
                        return
                    async for item in stream_messages(source, self.base_url):
                        yield item
                    return
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                error = self._fail(Kind.UNREACHABLE, type(exc).__name__, None, request_id, "POST", path)
            except httpx.TimeoutException as exc:
                raise self._fail(Kind.TIMEOUT, type(exc).__name__, None, request_id, "POST", path) from None
            except httpx.TransportError as exc:
                raise self._fail(Kind.DISCONNECTED, type(exc).__name__, None, request_id, "POST", path) from None
            except LettaError as exc:
                exc.request_id = exc.request_id or request_id
                error = exc
            delay = self._retry_delay(error, attempt, waited)
            if delay is None:
                raise error
            attempt += 1
            waited += delay
            log.info("letta stream not processed, retrying path=%s in=%.1fs attempt=%d", path, delay, attempt)
            await asyncio.sleep(delay)

    async def _send(self, path: str, body: dict[str, Any]) -> Any:
        """A send is retried only when Letta certainly did not run it (refused connection, 429, 503, a busy
        conversation)."""
        attempt = 0
        waited = 0.0
        while True:
            try:
                return await self._request("POST", path, json=body)
            except LettaError as error:
                delay = self._retry_delay(error, attempt, waited)
                if delay is None:
                    raise
                attempt += 1
                waited += delay
                log.info("letta send not processed, retrying path=%s in=%.1fs attempt=%d", path, delay, attempt)
                await asyncio.sleep(delay)

    def _retry_delay(self, error: LettaError, attempt: int, waited: float) -> float | None:
        """How long to wait before sending again, or None to give up. A conversation busy with another run
        (409 naming its run_id) is waited out for up to `busy_wait` seconds, looking again every few seconds;
        any other unsent request gets `send_retries` retries with backoff."""
        if error.busy:
            if waited >= self.busy_wait:
                return None
            log.info("letta conversation busy run_id=%s, waiting", error.run_id)
            return min(self.retry_base * 2.0**attempt, MAX_BUSY_DELAY, self.busy_wait - waited)
        if not error.certainly_unsent or attempt >= self.send_retries:
            return None
        return min(error.retry_after or self.retry_base * 2.0**attempt, MAX_RETRY_DELAY)

    async def _get(self, path: str, model: type[M]) -> M:
        return self._validate(await self._request("GET", path), model)

    def _validate(self, payload: Any, model: type[M]) -> M:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise LettaError(Kind.BAD_RESPONSE, _short(exc), base_url=self.base_url) from None

    def _validate_list(self, payload: Any, adapter: TypeAdapter[list[L]]) -> list[L]:
        try:
            return adapter.validate_python(payload)
        except ValidationError as exc:
            raise LettaError(Kind.BAD_RESPONSE, _short(exc), base_url=self.base_url) from None

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        request_id = uuid.uuid4().hex[:12]
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            response = await self._http.request(method, path, headers={"X-Request-Id": request_id}, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise self._fail(Kind.UNREACHABLE, type(exc).__name__, None, request_id, method, path) from None
        except httpx.TimeoutException as exc:
            raise self._fail(Kind.TIMEOUT, type(exc).__name__, None, request_id, method, path) from None
        except httpx.TransportError as exc:
            raise self._fail(Kind.DISCONNECTED, type(exc).__name__, None, request_id, method, path) from None
        elapsed_ms = (loop.time() - started) * 1000
        log.info(
            "letta call method=%s path=%s status=%s ms=%.0f request_id=%s",
            method,
            path,
            response.status_code,
            elapsed_ms,
            request_id,
        )
        if response.status_code >= 400:
            raise self._error_for(response, request_id, method, path)
        try:
            return response.json()
        except ValueError:
            raise self._fail(Kind.BAD_RESPONSE, "not JSON", response.status_code, request_id, method, path) from None

    def _error_for(self, response: httpx.Response, request_id: str, method: str, path: str) -> LettaError:
        status = response.status_code
        run_id: str | None = None
        try:
            body = parse_error(response.json())
            detail, run_id = body.describe(), body.run_id
        except ValueError:
            detail = sse_error_text(response.text) or response.text[:200]
        if status in (401, 403):
            kind = Kind.UNAUTHORIZED
        elif status == 405 or (status == 404 and detail == "Not Found"):
            kind = Kind.ROUTE_MISSING
        elif status == 404:
            kind = Kind.NOT_FOUND
        elif status == 409:
            kind = Kind.CONFLICT
        elif status == 429:
            kind = Kind.RATE_LIMITED
        elif status >= 500:
            kind = Kind.SERVER_ERROR
        else:
            kind = Kind.INVALID
        error = self._fail(kind, _clip(detail), status, request_id, method, path)
        error.retry_after = _retry_after(response.headers.get("retry-after"))
        error.run_id = run_id if kind == Kind.CONFLICT else None
        return error

    def _fail(self, kind: Kind, detail: str, status: int | None, request_id: str, method: str, path: str) -> LettaError:
        log.warning(
            "letta error kind=%s method=%s path=%s status=%s request_id=%s detail=%r",
            kind,
            method,
            path,
            status,
            request_id,
            detail,
        )
        return LettaError(kind, detail, status=status, base_url=self.base_url, request_id=request_id)


def _lock_key(conversation_id: str, agent_id: str | None) -> str:
    """The agent's own thread shares the agent's lock with the agent routes; a conversation has its own."""
    return agent_id if conversation_id == DEFAULT_CONVERSATION and agent_id else conversation_id


def _created(run: dict[str, Any]) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(run.get("created_at")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


async def _every(fetch: Callable[[int, str | None], Awaitable[list[Item]]], cap: int) -> list[Item]:
    """Follow `after` cursors until a short or empty page. Letta 0.11.7 answers [] to any `after` for
    groups, so there the first page is all there is; a page that repeats itself ends the walk too."""
    items: list[Item] = []
    seen: set[str] = set()
    after: str | None = None
    while len(items) < cap:
        limit = min(PAGE_SIZE, cap - len(items))
        page = await fetch(limit, after)
        fresh = [item for item in page if item.id not in seen]
        items.extend(fresh)
        seen.update(item.id for item in fresh)
        if len(page) < limit or not fresh:
            break
        after = page[-1].id
    return items


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid"
    where = ".".join(str(p) for p in errors[0]["loc"])
    return _clip(f"{where}: {errors[0]['msg']}")
