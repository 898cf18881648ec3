"""The REST client's HTTP: one aiohttp `ClientSession` per process (per event loop), and HTTP and transport
failures made into a few typed `LettaError`s. The routes are `client.py`'s.

aiohttp rather than httpx: a streamed send cost 1.05 ms of CPU through httpx and httpx-sse and 0.33 ms through
aiohttp (the same fake, the same machine; issue 20's notes), and the bridge runs on aiohttp already (Bolt's
`AsyncApp`, slack_sdk's client, the App Server's socket).

Sends are never retried unless Letta certainly did not run them: Letta does not deduplicate, so a retried send is
a second turn.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, TypeAdapter, ValidationError

from bridge import __version__
from bridge.ids import request_id as new_request_id
from bridge.letta import gateways
from bridge.letta.answers import (
    WIRE_ERRORS,
    Answer,
    read_answer,
    redirect_words,
    retry_after,
    wire_detail,
    wire_kind,
)
from bridge.letta.errors import ENV_KEY, KeyOrigin, Kind, LettaError
from bridge.letta.locks import AgentLocks, BusyWait
from bridge.letta.models import (
    LettaMessage,
    LettaResponse,
    parse_error,
    run_error,
)
from bridge.letta.sse import sse_events
from bridge.letta.stream import messages as stream_messages
from bridge.letta.stream import sse_error_text
from bridge.proxies import proxy_for

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
L = TypeVar("L")

MAX_RETRY_DELAY = 30.0  # the longest Retry-After waited out; a longer one is said to the person instead
BUSY_RUN = re.compile(r"\brun_id=(run-[A-Za-z0-9-]+)")
MAX_BUSY_DELAY = 5.0  # between looks at a conversation another run holds
MIN_BUSY_DELAY = 0.05  # ... and the least (LETTA_RETRY_BASE_SECONDS may be 0): never a loop of sends back to back
SSE_HEADERS = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
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
        key_origin: KeyOrigin = ENV_KEY,
    ) -> None:
        headers = {"User-Agent": f"letta-slack-bridge/{__version__}", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if project:
            headers["X-Project"] = project
        self.base_url = base_url.rstrip("/")
        self.key_origin = key_origin  # where api_key was set, said if the server refuses it
        self.locks = AgentLocks()
        self.send_retries = send_retries
        self.no_stream_route: set[str] = set()  # "agents" / "groups": the server answered 404/405 to /stream
        self.conversations: bool | None = None  # whether the server has /v1/conversations; None until asked
        self.resumable: bool | None = None  # background runs and stream resume (Redis, Cloud); None until asked
        self._legacy_runs: bool | None = None  # active runs at /v1/runs/active (below 0.12); None until asked
        self.retry_base = retry_base
        self.busy_wait = busy_wait
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        # The environment's proxy (bridge/proxies.py), read once: aiohttp's trust_env reads it (and ~/.netrc) again
        # on a worker thread for every request.
        self.proxy = proxy_for(self.base_url)

    def _http(self) -> aiohttp.ClientSession:
        """The session, made on first use in each event loop (aiohttp binds it to the loop it was made in)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session_loop is not loop:
            self._session_loop = loop
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._max_connections),
            )
        return self._session

    async def aclose(self, wait: float = 0.0) -> None:
        """Close the connections (`wait`: for clients whose closing cancels turns still running; REST's do not)."""
        if self._session is not None:
            await self._session.close()

    async def _stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[LettaMessage]:
        """A streamed send; retried like `_send`, and only before anything has arrived."""
        busy = BusyWait()
        try:
            async for item in self._stream_attempts(path, body, busy):
                yield item
        finally:
            busy.take_back()

    async def _stream_attempts(self, path: str, body: dict[str, Any], busy: BusyWait) -> AsyncIterator[LettaMessage]:
        attempt = 0
        waited = 0.0
        while True:
            request_id = new_request_id()
            started = asyncio.get_running_loop().time()
            try:
                headers = {"X-Request-Id": request_id, **SSE_HEADERS}
                async with self._http().post(
                    self.base_url + path, json=body, headers=headers, proxy=self.proxy, allow_redirects=False
                ) as response:
                    log.info(
                        "letta stream method=POST path=%s status=%s ms=%.0f request_id=%s",
                        path,
                        response.status,
                        (asyncio.get_running_loop().time() - started) * 1000,
                        request_id,
                    )
                    if response.status >= 300:
                        raise self._error_for(await read_answer(response), request_id, "POST", path)
                    busy.take_back()  # taken: whatever runs now is this send's
                    if not response.headers.get("content-type", "").startswith("text/event-stream"):
                        # A proxy or server that answers the stream route with plain JSON.
                        answer = await read_answer(response)
                        try:
                            payload = self._validate(answer.json(), LettaResponse)
                        except ValueError:
                            raise self._fail(
                                Kind.BAD_RESPONSE, "not JSON", answer.status, request_id, "POST", path
                            ) from None
                        for item in payload.messages:
                            yield item
                        failed = run_error(payload, self.base_url, request_id)
                        if failed is not None:
                            raise failed
                        return
                    async for item in stream_messages(sse_events(response.content.iter_any()), self.base_url):
                        yield item
                    return
            except WIRE_ERRORS as exc:  # retried below only when certainly unsent
                error = self._fail(wire_kind(exc), wire_detail(exc), None, request_id, "POST", path)
            except LettaError as exc:
                exc.request_id = exc.request_id or request_id
                error = exc
            delay = self._retry_delay(error, attempt, waited)
            if delay is None:
                raise error
            attempt += 1
            waited += delay
            log.info("letta stream not processed, retrying path=%s in=%.1fs attempt=%d", path, delay, attempt)
            await self._pause(error, delay, busy)
            self.locks.go_on()  # not sent again by a worker frozen in the wait past its binding's lease

    async def _send(self, path: str, body: dict[str, Any]) -> Any:
        """A send is retried only when Letta certainly did not run it (refused connection, a gateway's answer that
        proves it never forwarded it, 429, a busy conversation)."""
        attempt = 0
        waited = 0.0
        busy = BusyWait()
        try:
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
                    await self._pause(error, delay, busy)
                    self.locks.go_on()
        finally:
            busy.take_back()

    @staticmethod
    async def _pause(error: LettaError, delay: float, busy: BusyWait) -> None:
        """The wait before a send is made again; while another client's run keeps the conversation busy, that run
        is not the turn's to cancel (until an attempt is taken: `BusyWait`)."""
        if error.busy:
            busy.let_go()
        else:
            busy.take_back()
        await asyncio.sleep(delay)

    def _retry_delay(self, error: LettaError, attempt: int, waited: float) -> float | None:
        """How long to wait before sending again, or None to give up. A conversation busy with another run
        (409 naming its run_id) is waited out for up to `busy_wait` seconds, looking again every few seconds;
        any other unsent request gets `send_retries` retries with backoff."""
        if error.busy:
            if waited >= self.busy_wait:
                return None
            log.info("letta conversation busy run_id=%s, waiting", error.run_id)
            backoff = max(self.retry_base * 2.0 ** min(attempt, 16), MIN_BUSY_DELAY)
            return min(backoff, MAX_BUSY_DELAY, self.busy_wait - waited)
        if not error.certainly_unsent or attempt >= self.send_retries:
            return None
        if error.retry_after is not None and error.retry_after > MAX_RETRY_DELAY:
            return None  # Letta asks for a longer wait (a quota that resets later): said at once, not asked again
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

    async def _request(
        self, method: str, path: str, params: Mapping[str, object] | None = None, json: object = None
    ) -> Any:
        request_id = new_request_id()
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await self._exchange(method, path, request_id, params, json)
        elapsed_ms = (loop.time() - started) * 1000
        log.info(
            "letta call method=%s path=%s status=%s ms=%.0f request_id=%s",
            method,
            path,
            answer.status,
            elapsed_ms,
            request_id,
        )
        if answer.status >= 300:
            raise self._error_for(answer, request_id, method, path)
        try:
            return answer.json()
        except ValueError:
            raise self._fail(Kind.BAD_RESPONSE, "not JSON", answer.status, request_id, method, path) from None

    async def _exchange(
        self,
        method: str,
        path: str,
        request_id: str = "",
        params: Mapping[str, object] | None = None,
        json: object = None,
    ) -> Answer:
        """One request, its answer read whole; a failure on the wire made a `LettaError` (and logged)."""
        query = {k: str(v) for k, v in (params or {}).items()}
        headers = {"X-Request-Id": request_id} if request_id else {}
        try:
            async with self._http().request(
                method, self.base_url + path, params=query or None, json=json, headers=headers, proxy=self.proxy,
                allow_redirects=False,
            ) as response:
                return await read_answer(response)
        except WIRE_ERRORS as exc:
            raise self._fail(wire_kind(exc), wire_detail(exc), None, request_id, method, path) from None

    async def _probe(self, method: str, path: str, json: object = None) -> Answer:
        """What a route answers: its status and headers, and an error's body (a success's is left unread: a probe
        that finds a stream does not wait for it)."""
        try:
            async with self._http().request(
                method, self.base_url + path, json=json, proxy=self.proxy, allow_redirects=False
            ) as response:
                body = await response.read() if response.status >= 400 else b""
                return Answer(response.status, response.headers, body, response.reason or "")
        except WIRE_ERRORS as exc:
            raise self._fail(wire_kind(exc), wire_detail(exc), None, "", method, path) from None

    def _error_for(self, response: Answer, request_id: str, method: str, path: str) -> LettaError:
        status = response.status
        run_id: str | None = None
        loop_ran = False
        try:
            body = parse_error(response.json())
            detail, run_id = body.describe(), body.run_id
            loop_ran = body.from_agent_loop(status)
        except ValueError:
            detail = sse_error_text(response.text) or gateways.plain(response.text[:2000])[:200]
        gateway = gateways.read(status, response.headers, response.text[:2000])
        if gateway is not None:
            detail = gateway.said
        if 300 <= status < 400:  # never followed: the check of a URL reads paths under that URL only
            kind, detail = Kind.UNREACHABLE, redirect_words(status, response.headers.get("location", ""))
        elif gateway is not None and gateway.unsent:
            kind = Kind.UNREACHABLE  # the gateway says it never got the request to Letta
        elif status == 407:
            kind, detail = Kind.UNREACHABLE, "the proxy answered HTTP 407"  # it forwarded nothing: it wants credentials
        elif status in (401, 403):
            kind = Kind.UNAUTHORIZED
        elif status == 405 or (status == 404 and detail == "Not Found"):
            kind = Kind.ROUTE_MISSING
        elif status == 404:
            kind = Kind.NOT_FOUND
        elif status == 409:
            kind = Kind.CONFLICT
        elif status == 402:
            kind = Kind.QUOTA
        elif status == 429:
            kind = Kind.RATE_LIMITED
        elif status >= 500:
            kind = Kind.SERVER_ERROR
        else:
            kind = Kind.INVALID
        error = self._fail(kind, _clip(detail), status, request_id, method, path)
        error.retry_after = retry_after(response.headers.get("retry-after"))
        if kind == Kind.CONFLICT and run_id is None and (named := BUSY_RUN.search(detail)):
            run_id = named[1]  # a busy 409 that names its run only in words
        error.run_id = run_id if kind == Kind.CONFLICT else None
        error.loop_ran = loop_ran
        error.gateway = gateway.name if gateway is not None else ""
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
        return LettaError(
            kind, detail, status=status, base_url=self.base_url, request_id=request_id, key_origin=self.key_origin
        )


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid"
    where = ".".join(str(p) for p in errors[0]["loc"])
    return _clip(f"{where}: {errors[0]['msg']}")
