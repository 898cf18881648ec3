"""HTTP_INGRESS=process: the ingress (`ingress.py`) in a process of its own, forked by `serve` before the bridge
starts, so that Slack's acknowledgement never waits for the bridge's interpreter.

On a thread of the bridge's own process, the ingress shared the interpreter lock with the turns: under a burst
the main thread runs flat out, and every step of an acknowledgement waited for the lock (bench's full runs, 50
channels at 200 events a second: p99 7.6 and 9.4 ms on a thread, 3.8 and 5.8 ms in a process of its own; a
recording app with a thread kept busy beside it doubles its own, bench/recording_app.py). Forked after the imports
and with the heap frozen (`gc.freeze`), the child starts out sharing the bridge's pages; each page the bridge
writes afterwards leaves the child alone with the original, so under load it holds about 35 MB of its own (bench's
memory figure). That is why it is not the default: the thread keeps 1,000 turns in flight under 150 MB.

The two ends speak JSON lines over a socket pair. The bridge says `listen` once it is ready for events, `stop`
(stop listening) and `close`, and reports each event handled or failed; the child answers `listening` (with its
connection cap) or the `error` that kept it from listening, `stopped`, and hands over each `arrival`. The child
ignores SIGINT and SIGTERM (a terminal's Ctrl-C and a platform's stop reach every process of the group): the
bridge stops it in order. It ends when the bridge closes the pair or dies (on Linux the kernel kills it with its
parent); a child that dies makes the bridge stop with an error, and the platform start it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bridge.config import Settings
from bridge.http import cannot_listen
from bridge.inbox import Arrival, Inbox, inbox_path
from bridge.ingress import Ingress, IngressError
from bridge.slack.gate import Gate
from bridge.store.database_url import sqlite_path

log = logging.getLogger(__name__)

LINE_LIMIT = 8 << 20  # bytes of one message: an event's body (at most 1 MiB) and headers, JSON-escaped
REAP_WAIT = 10.0  # seconds the bridge waits for the child to end once told to close, before it kills it
STOP_WAIT = 5.0  # seconds the bridge waits for the child's word that it stopped listening (it takes milliseconds)
PR_SET_PDEATHSIG = 1  # prctl(2): the signal the kernel sends this process when its parent dies


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def forks(settings: Settings) -> bool:
    """Whether `serve` with these settings puts its ingress in a process of its own: HTTP on SQLite, inbox on,
    HTTP_INGRESS=process."""
    return behind_ingress(settings) and settings.http_ingress == "process"


def behind_ingress(settings: Settings) -> bool:
    """Whether `serve` acknowledges events from the ingress (a thread, or a process): SQLite with the inbox on."""
    return settings.http_events_inbox and settings.database_url.startswith("sqlite:")


class IngressProcess:
    """The bridge's end: made by `fork` before the event loop runs; `start`, `stop_listening`, `close` and the
    reports from the main loop, as the in-process ingress had them."""

    def __init__(self, pid: int, end: socket.socket, folder: str) -> None:
        self.pid = pid
        self._end = end
        self._folder = folder
        self.backend = os.path.join(folder, "app.sock")  # where the main app listens for what the child passes on
        self._deliver: Callable[[Arrival], None] = lambda _arrival: None
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reports: list[tuple[bool, int]] = []
        self._closing = False
        self._ended = False
        self.on_lost: Callable[[], None] = lambda: None  # called when the child ended without being told to
        self.lost_why = ""

    @classmethod
    def fork(cls, settings: Settings) -> IngressProcess:
        """Fork the child, which waits for `listen`; in the child this never returns."""
        folder = tempfile.mkdtemp(prefix="letta-bridge-")  # mode 700: this user's processes only
        ours, theirs = socket.socketpair()
        parent = os.getpid()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # what is buffered would otherwise be written by both processes
        gc.collect()
        gc.freeze()  # the child's collections never walk (and so never copy) the pages it shares
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if pid == 0:
            ours.close()
            code = 1
            try:
                code = _child(settings, theirs, os.path.join(folder, "app.sock"), parent)
            except BaseException:
                log.exception("the ingress process failed")
            finally:
                for handler in logging.getLogger().handlers:
                    with contextlib.suppress(Exception):
                        handler.flush()
                os._exit(code)
        theirs.close()
        return cls(pid, ours, folder)

    def deliver_to(self, deliver: Callable[[Arrival], None]) -> None:
        self._deliver = deliver

    async def start(self) -> int:
        """Tell the child to listen; its connection cap, or IngressError with the sentence that kept it from it."""
        reader, self._writer = await asyncio.open_unix_connection(sock=self._end, limit=LINE_LIMIT)
        self._reading = asyncio.create_task(self._read(reader))
        self._send({"listen": True})
        answer = await self._answers.get()
        if "error" in answer:
            raise IngressError(answer["error"])
        return int(answer["listening"])

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except (OSError, ValueError):
                line = b""
            if not line:
                break
            message = json.loads(line)
            arrival = message.get("arrival")
            if arrival is None:
                self._answers.put_nowait(message)
                continue
            self._deliver(
                Arrival(arrival["id"], arrival["headers"], arrival["body"].encode("utf-8"), arrival["attempts"])
            )
        self._ended = True
        self._answers.put_nowait({"error": "the ingress process ended before it listened", "ended": True})
        if not self._closing:
            status = await asyncio.to_thread(self._status)
            self.lost_why = f"the ingress process ended unexpectedly ({status}): Slack's events are no longer answered"
            log.error("%s; stopping, so that the platform starts the bridge again", self.lost_why)
            self.on_lost()

    def _status(self) -> str:
        """How the child ended, once it has (reaped here); "still running" when it has not yet."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.pid = 0
                    code = os.waitstatus_to_exitcode(status)
                    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            time.sleep(0.01)
        return "still running"

    def _send(self, message: dict[str, Any]) -> None:
        if self._writer is not None and not self._ended and not self._writer.is_closing():
            self._writer.write(_line(message))

    async def stop_listening(self) -> None:
        """No new connections or requests; the events recorded so far are still the bridge's to handle."""
        if self._writer is None or self._ended:
            return
        self._send({"stop": True})
        try:
            async with asyncio.timeout(STOP_WAIT):
                await self._answers.get()
        except TimeoutError:  # frozen or stuck: what it records stays in the inbox, for the next start
            log.warning("the ingress process did not answer within %gs when told to stop listening", STOP_WAIT)

    def handled(self, arrival: Arrival) -> None:
        """Called on the main loop: the event is in the store (or was ignored); its row can go."""
        self._report(True, arrival.id)

    def failed(self, arrival: Arrival) -> None:
        """Called on the main loop: an attempt failed; the row stays, with its count of attempts."""
        self._report(False, arrival.id)

    def _report(self, handled: bool, row: int) -> None:
        if not self._reports:
            asyncio.get_running_loop().call_soon(self._send_reports)  # one line for what this turn of the loop reports
        self._reports.append((handled, row))

    def _send_reports(self) -> None:
        reports, self._reports = self._reports, []
        if reports:
            self._send({"reports": reports})

    async def close(self) -> None:
        """After the bridge has handled (or given up) what it was handed: the child writes the last removals,
        closes the inbox and ends; it is waited for, and killed if it has not ended within REAP_WAIT."""
        self._closing = True
        self._send_reports()
        self._send({"close": True})
        if self._writer is not None:
            with contextlib.suppress(OSError):
                await self._writer.drain()
            self._writer.close()
        else:
            self._end.close()
        waited = False
        if self._reading is not None:  # its end of the pair closes as it ends
            done, _ = await asyncio.wait({self._reading}, timeout=REAP_WAIT)
            if not done:
                waited = True
                log.warning("the ingress process did not answer within %gs when told to close", REAP_WAIT)
        await asyncio.to_thread(self.end, 0.0 if waited else REAP_WAIT)
        if self._reading is not None:
            await asyncio.gather(self._reading, return_exceptions=True)  # ended with the child

    def end(self, wait: float = REAP_WAIT) -> None:
        """Without a loop (the start failed before it ran): the pair closed, the child waited for `wait` seconds,
        then killed."""
        self._closing = True
        if self._writer is None:
            self._end.close()
        deadline = time.monotonic() + wait
        while self.pid:
            try:
                pid, _status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                break
            if time.monotonic() > deadline:
                log.warning("the ingress process did not end when told to; killed")
                os.kill(self.pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.01)
        self.pid = 0
        shutil.rmtree(self._folder, ignore_errors=True)


# --- the child ---


def _die_with(parent: int) -> bool:
    """Linux: the kernel kills this process when the bridge's dies (kill -9 included), so that nothing is left
    holding the port. False when the bridge had already gone."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    return os.getppid() == parent


def _child(settings: Settings, end: socket.socket, backend: str, parent: int) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if not _die_with(parent):
        return 0
    return asyncio.run(_serve(settings, end, backend))


async def _serve(settings: Settings, end: socket.socket, backend: str) -> int:
    reader, writer = await asyncio.open_unix_connection(sock=end, limit=LINE_LIMIT)

    def say(message: dict[str, Any]) -> None:
        if not writer.is_closing():
            writer.write(_line(message))

    def deliver(arrival: Arrival) -> None:
        body = arrival.body.decode("utf-8")  # the gate let only UTF-8 through
        say({"arrival": {"id": arrival.id, "headers": arrival.headers, "body": body, "attempts": arrival.attempts}})

    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    gate = Gate(secret, _not_asked, settings.slack_response_url_hosts)
    inbox = Inbox(inbox_path(sqlite_path(settings.database_url)))
    ingress = Ingress(settings, gate.check, inbox, deliver, backend)
    first = await reader.readline()
    if not first:
        return 0  # the bridge's start failed before it was ready for events
    try:
        say({"listening": await ingress.start()})
    except OSError as exc:
        say({"error": cannot_listen(settings.host, settings.port, exc)})
    except IngressError as exc:
        say({"error": str(exc)})
    try:
        while line := await _next(reader):
            message = json.loads(line)
            if "reports" in message:
                for handled, row in message["reports"]:
                    ingress.report(handled, row)
            elif "stop" in message:
                await ingress.stop_listening()
                say({"stopped": True})
            elif "close" in message:
                break
    finally:
        await ingress.close()
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()
    return 0


async def _next(reader: asyncio.StreamReader) -> bytes:
    """The bridge's next line; empty once it has closed the pair or died."""
    try:
        return await reader.readline()
    except (OSError, ValueError):
        return b""


async def _not_asked(_signature: str, _expires: float) -> bool:
    """The gate's replay check against the store: the ingress uses the inbox's instead (`Gate.check` only)."""
    raise NotImplementedError
