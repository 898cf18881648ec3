"""The REST client's HTTP: one `httpx.AsyncClient` per process, and HTTP and transport failures made into a few
typed `LettaError`s. The routes are `client.py`'s.

Sends are never retried unless Letta certainly did not run them: Letta does not deduplicate, so a retried send is
a second turn.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import httpx
from httpx_sse import aconnect_sse
from pydantic import BaseModel, TypeAdapter, ValidationError

from bridge import __version__
from bridge.letta.errors import Kind, LettaError
from bridge.letta.locks import AgentLocks
from bridge.letta.models import (
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

# Idle connections kept for the next send. httpcore looks at every pooled connection (a syscall for each idle one)
# whenever a request needs one, so a pool that kept hundreds after a burst made each later send slower.
KEEPALIVE = 32


class LettaTransport:
    """Requests, streamed sends and their retries; what every route of `LettaClient` goes through."""

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


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid"
    where = ".".join(str(p) for p in errors[0]["loc"])
    return _clip(f"{where}: {errors[0]['msg']}")
