"""One `httpx.AsyncClient` per process; HTTP and transport failures become a few typed `LettaError`s.

Sends are never retried here: Letta does not deduplicate, so a retried send is a second turn.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import httpx
from httpx_sse import aconnect_sse
from pydantic import BaseModel, TypeAdapter, ValidationError

from bridge import __version__
from bridge.letta.errors import Kind, LettaError
from bridge.letta.models import (
    AGENT_LIST,
    GROUP_LIST,
    MESSAGE_LIST,
    Agent,
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


class _Listed(Protocol):
    @property
    def id(self) -> str: ...


Item = TypeVar("Item", bound=_Listed)

# Enough for any menu Slack can show (100 options); a bigger server is listed in part, and says so.
LIST_CAP = 500
PAGE_SIZE = 100

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
AGENT_ID = re.compile(rf"agent-{_UUID}")
GROUP_ID = re.compile(rf"group-{_UUID}")


def is_agent_id(value: str) -> bool:
    return AGENT_ID.fullmatch(value) is not None


def is_group_id(value: str) -> bool:
    return GROUP_ID.fullmatch(value) is not None


def speaker_name(display_name: str | None) -> str | None:
    """LLM providers accept only letters, digits, `_` and `-` in a message's name (at most 64)."""
    if not display_name:
        return None
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", display_name).strip("_")[:64]
    return name or None


def user_message(text: str, otid: str, sender: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "user", "content": [{"type": "text", "text": text}], "otid": otid}
    name = speaker_name(sender)
    if name:
        message["name"] = name
    return message


class AgentLocks:
    """Letta runs two sends to one agent at once and mixes their contexts, so the bridge never does."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def hold(self, agent_ids: Iterable[str]) -> AsyncIterator[None]:
        # Sorted so that two group turns sharing agents cannot deadlock.
        ids = sorted(set(agent_ids))
        locks = [self._locks.setdefault(agent_id, asyncio.Lock()) for agent_id in ids]
        acquired: list[asyncio.Lock] = []
        try:
            for lock in locks:
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in reversed(acquired):
                lock.release()


class LettaClient:
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
        self.retry_base = retry_base
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            # httpx allows 100 connections by default, whatever MAX_CONCURRENT_TURNS says.
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def aclose(self) -> None:
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
            if not error.certainly_unsent or attempt >= self.send_retries:
                raise error
            delay = min(error.retry_after or self.retry_base * 2**attempt, MAX_RETRY_DELAY)
            attempt += 1
            log.info("letta stream not processed, retrying path=%s in=%.1fs attempt=%d", path, delay, attempt)
            await asyncio.sleep(delay)

    async def _send(self, path: str, body: dict[str, Any]) -> Any:
        """A send is retried only when Letta certainly did not run it (refused connection, 429, 503)."""
        attempt = 0
        while True:
            try:
                return await self._request("POST", path, json=body)
            except LettaError as error:
                if not error.certainly_unsent or attempt >= self.send_retries:
                    raise
                delay = min(error.retry_after or self.retry_base * 2**attempt, MAX_RETRY_DELAY)
                attempt += 1
                log.info("letta send not processed, retrying path=%s in=%.1fs attempt=%d", path, delay, attempt)
                await asyncio.sleep(delay)

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
        try:
            body = parse_error(response.json())
            detail = body.describe()
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
