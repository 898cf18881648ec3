"""The one long-lived WebSocket to a Letta App Server, shared by every turn of the process.

Why it is built this way (reference/letta/app-server/README.md):
- The server answers a command by echoing its `request_id`, and drops a frame it cannot read without a word
  (§2): every request here carries its own id and its own timeout.
- A turn's frames carry no request id, only `runtime {agent_id, conversation_id}`: a turn subscribes to its
  runtime before it sends, and the reader hands it every frame of that runtime.
- Closing a socket cancels the turns it started and leaves a truncated reply in history (§9); on 0.34.12 the
  conversation then refuses every input until the server restarts. So the socket is never closed while a turn
  runs: `close` waits for them, and refuses (SocketBusy) when they outlast its wait, unless forced.
- A dropped socket is reconnected with backoff, tried every `backoff_base` while a caller waits for it (a
  restarting 0.34.12 refuses connections for seconds); what was waiting on it fails at once as DISCONNECTED (the
  server has cancelled the turns that socket started).
- Server pings (every 30 s, §2) are answered by aiohttp (autoping); our own heartbeat finds a dead peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bridge import __version__
from bridge.letta.appserver.wire import Frame, Runtime, parse_frame
from bridge.letta.errors import ENV_KEY, KeyOrigin, Kind, LettaError
from bridge.proxies import proxy_for

log = logging.getLogger(__name__)


class SocketBusy(Exception):
    """`close` was asked to close while turns still run on the socket."""


@dataclass(frozen=True)
class Dropped:
    """Put on a subscription when the socket it listens on is lost; `connection` is the lost one's number."""

    reason: str
    connection: int = 0


Item = Frame | Dropped


@dataclass(eq=False)
class Subscription:
    """The frames of one runtime (a conversation), in arrival order. `turn` ones count as running turns."""

    runtime: Runtime
    turn: bool
    queue: asyncio.Queue[Item] = field(default_factory=asyncio.Queue)
    watch: Callable[[Item], None] | None = None  # also told of each item as it arrives, read or not

    def put(self, item: Item) -> None:
        if self.watch is not None:
            self.watch(item)
        self.queue.put_nowait(item)

    async def next(self, within: float | None) -> Item:
        """The next frame; raises TimeoutError after `within` seconds (None: wait as long as it takes). Not
        wait_for: on 3.11 it returns a frame that arrives as the reader is cancelled, and drops the cancel."""
        async with asyncio.timeout(within):
            return await self.queue.get()


class AppServerSocket:
    def __init__(
        self,
        ws_url: str,
        token: str | None = None,
        *,
        connect_timeout: float = 10.0,
        request_timeout: float = 15.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        heartbeat: float | None = 30.0,
        key_origin: KeyOrigin = ENV_KEY,
    ) -> None:
        self.ws_url = ws_url
        self.key_origin = key_origin  # where the token was set, said if the server refuses it
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.heartbeat = heartbeat
        self.connections = 0  # successful connects so far; a reconnect makes it > 1
        self._headers = {"User-Agent": f"letta-slack-bridge/{__version__}"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"  # capability-token auth (README §13)
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Frame]] = {}
        self._subscriptions: dict[tuple[str, str], list[Subscription]] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._session: aiohttp.ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._refused = asyncio.Event()  # the latest connect was refused (401/403): waiting for it is pointless
        self._wanted = asyncio.Event()  # a caller began waiting for the socket: the running backoff is cut short
        self._waiters = 0  # callers waiting for the socket now: while any do, the reconnect tries every backoff_base
        self._turns_idle = asyncio.Event()
        self._turns_idle.set()
        self._turns = 0
        self._last_error: LettaError | None = None
        self._closing = False

    # ------------------------------------------------------------ lifetime

    def start(self) -> None:
        if self._runner is None:
            self._closing = False
            # A context of its own: the turn or request that first needs the socket must not lend it its log ids.
            self._runner = asyncio.create_task(self._run(), name="app-server-socket", context=contextvars.Context())

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def running_turns(self) -> int:
        return self._turns

    async def close(self, wait: float = 0.0, force: bool = False) -> None:
        """Close once no turn runs. Waits up to `wait` seconds for running turns; if some still run, raises
        SocketBusy and leaves the socket open, unless `force` (their turns are then cancelled by the server)."""
        if self._turns:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._turns_idle.wait(), wait)
            if self._turns and not force:
                raise SocketBusy(f"{self._turns} turn(s) still running on the App Server socket")
            if self._turns:
                log.warning("app server: closing the socket under %d running turn(s)", self._turns)
        self._closing = True
        runner, self._runner = self._runner, None
        if self._ws is not None:
            await self._ws.close()
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._lost("the bridge closed the connection")

    # ------------------------------------------------------------ requests

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    async def request(
        self, frame: dict[str, Any], within: float | None = None, written: Callable[[int], None] | None = None
    ) -> Frame:
        """Send one command and wait (`within` seconds, else the request timeout) for the frame that echoes its
        `request_id`; `written` is told the connection's number once the frame has left."""
        request_id = frame.get("request_id")
        assert isinstance(request_id, str), "a request needs a request_id"
        timeout = self.request_timeout if within is None else within
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self.send(frame)
            if written is not None:
                written(self.connections)
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise self._error(
                Kind.TIMEOUT, f"no answer to {frame.get('type')} within {timeout:.0f} s", request_id
            ) from None
        finally:
            self._pending.pop(request_id, None)

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one frame, connecting first if need be (UNREACHABLE / UNAUTHORIZED when that fails)."""
        ws = await self._connection()
        try:
            await ws.send_json(frame)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise self._error(Kind.DISCONNECTED, f"the frame could not be sent ({type(exc).__name__})") from None

    # ------------------------------------------------------------ subscriptions

    @contextlib.asynccontextmanager
    async def subscribe(self, runtime: Runtime, turn: bool = False) -> AsyncIterator[Subscription]:
        """The frames of `runtime` while the block runs. A `turn` subscription counts as a running turn
        (`close` waits for it); a new one is refused while the socket closes."""
        if turn and self._closing:
            raise self._error(Kind.UNREACHABLE, "the bridge is stopping")
        key = (runtime.agent_id, runtime.conversation_id)
        subscription = Subscription(runtime, turn)
        self._subscriptions.setdefault(key, []).append(subscription)
        if turn:
            self._turns += 1
            self._turns_idle.clear()
        try:
            yield subscription
        finally:
            listeners = self._subscriptions.get(key, [])
            if subscription in listeners:
                listeners.remove(subscription)
            if not listeners:
                self._subscriptions.pop(key, None)
            if turn:
                self._turns -= 1
                if not self._turns:
                    self._turns_idle.set()

    # ------------------------------------------------------------ the connection

    async def _connection(self) -> aiohttp.ClientWebSocketResponse:
        self.start()
        if not self._connected.is_set():
            self._waiters += 1
            self._wanted.set()
            waits = [asyncio.ensure_future(event.wait()) for event in (self._connected, self._refused)]
            try:
                await asyncio.wait(waits, timeout=self.connect_timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._waiters -= 1
                for wait in waits:
                    wait.cancel()
        if not self._connected.is_set():
            error = self._last_error or self._error(Kind.UNREACHABLE, "no connection")
            failure = LettaError(
                error.kind, error.detail, status=error.status, base_url=self.ws_url, key_origin=self.key_origin
            )
            failure.app_server = True
            raise failure from None
        assert self._ws is not None
        return self._ws

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                await self._connect()
            except LettaError as error:
                self._last_error = error
                if error.kind == Kind.UNAUTHORIZED:  # a wrong key: say so now, and keep trying in the background
                    self._refused.set()
                else:
                    self._refused.clear()
                delay = min(self.backoff_max, self.backoff_base * 2**attempt) * (0.5 + random.random() / 2)  # noqa: S311
                attempt += 1
                soon = min(delay, self.backoff_base) if self._waiters else delay  # a turn waits: tried every base
                log.warning("app server: cannot connect (%s); again in %.1f s", error, soon)
                await self._back_off(delay)
                continue
            attempt = 0
            reason = await self._read()
            self._lost(reason)
            if not self._closing:
                log.warning("app server: connection lost (%s); reconnecting", reason)
                await asyncio.sleep(self.backoff_base * random.random())  # noqa: S311

    async def _back_off(self, delay: float) -> None:
        """Wait `delay` before the next connect, or only `backoff_base` while a turn or request waits for the
        socket: a server back after an outage (a restart refuses connections for seconds) would otherwise fail
        every mention until the backoff, grown to 30 s, is over. Never less than `backoff_base` apart, however
        many callers wait."""
        self._wanted.clear()
        floor = min(delay, self.backoff_base)
        await asyncio.sleep(floor)
        if self._waiters:
            return
        try:
            await asyncio.wait_for(self._wanted.wait(), timeout=delay - floor)
        except TimeoutError:
            pass

    async def _connect(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            # No Origin header: the server refuses one unless --ws-auth is on (README §1).
            self._ws = await self._session.ws_connect(
                self.ws_url,
                headers=self._headers,
                heartbeat=self.heartbeat,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                max_msg_size=0,
                proxy=proxy_for(self.ws_url),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status >= 500:  # a gateway or proxy in front of a server that is down or restarting
                detail = f"HTTP {exc.status} answered the connection, by a gateway or proxy on the way"
                raise LettaError(Kind.UNREACHABLE, detail, status=exc.status, base_url=self.ws_url) from None
            kind = Kind.UNAUTHORIZED if exc.status in (401, 403) else Kind.ROUTE_MISSING
            error = LettaError(kind, exc.message, status=exc.status, base_url=self.ws_url, key_origin=self.key_origin)
            error.app_server = True
            raise error from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise LettaError(Kind.UNREACHABLE, type(exc).__name__, base_url=self.ws_url) from None
        self._last_error = None
        self._refused.clear()
        self.connections += 1
        self._connected.set()
        log.info("app server: connected to %s (connection %d)", self.ws_url, self.connections)

    async def _read(self) -> str:
        ws = self._ws
        assert ws is not None
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                frame = parse_frame(message.data)
                if frame is not None:
                    self._dispatch(frame)
            elif message.type == aiohttp.WSMsgType.ERROR:
                return f"error: {ws.exception()!r}"
        return f"closed (code {ws.close_code})"

    def _dispatch(self, frame: Frame) -> None:
        request_id = frame.request_id
        future = self._pending.get(request_id) if request_id else None
        if future is not None and not future.done():
            future.set_result(frame)
            return
        runtime = frame.runtime
        if runtime is None:
            return
        for subscription in self._subscriptions.get((runtime.agent_id, runtime.conversation_id), []):
            subscription.put(frame)

    def _lost(self, reason: str) -> None:
        """The connection is gone: whatever waited on it learns so now (the server cancels its turns)."""
        self._connected.clear()
        self._ws = None
        for request_id, future in list(self._pending.items()):
            if not future.done():
                future.set_exception(self._error(Kind.DISCONNECTED, f"connection lost: {reason}", request_id))
        for listeners in self._subscriptions.values():
            for subscription in listeners:
                subscription.put(Dropped(reason, self.connections))

    def _error(self, kind: Kind, detail: str, request_id: str = "") -> LettaError:
        return LettaError(kind, detail, base_url=self.ws_url, request_id=request_id)
