"""Start the bridge as a user does (`python -m bridge ...`, env vars, a real SQLite file) and drive it over HTTP."""

from __future__ import annotations

import io
import json
import os
import resource
import selectors
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx

from tests.e2e.forkserver import Forked, fork_server
from tests.fakes.signing import event_body, mention_event, signed_headers

REPO = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "e2e-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(slack_api_url: str, letta_url: str, db_path: Path, **extra: str) -> dict[str, str]:
    """A bridge's environment. Threads are not Letta conversations unless a test says so (LETTA_CONVERSATIONS):
    most tests pin down the agent route; tests/e2e/test_conversations.py covers conversations. A turn's working
    signs show at once (SLACK_WORKING_AFTER_SECONDS=0), so a test against an instant Letta still sees them;
    tests/e2e/test_presence.py covers the default delay."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LETTA_", "BRIDGE_"))}
    env.update(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack_api_url,
            "LETTA_BASE_URL": letta_url,
            "DATABASE_URL": f"sqlite:///{db_path}",
            "PYTHONUNBUFFERED": "1",
            "LETTA_RETRY_BASE_SECONDS": "0.05",
            "LETTA_CONVERSATIONS": "false",
            "SLACK_WORKING_AFTER_SECONDS": "0",
            # The fake Slack's response_url answers on its own host, which the bridge must be told it may use.
            "SLACK_RESPONSE_URL_HOSTS": urlsplit(slack_api_url).netloc,
        }
    )
    env.update(extra)
    return env


def run_cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m bridge ARGS`, run to its end, its output captured."""
    server = fork_server()
    if server is None:
        command = [sys.executable, "-m", "bridge", *args]
        return subprocess.run(command, env=env, cwd=cwd or REPO, capture_output=True, text=True, timeout=60)
    with open(os.devnull, "rb") as stdin:
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            proc = server.spawn(list(args), env, cwd or REPO, (stdin.fileno(), out_write, err_write))
        finally:
            os.close(out_write)
            os.close(err_write)
    with open(out_read, "rb") as out, open(err_read, "rb") as err:
        stdout, stderr = read_both(out, err, timeout=60)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return subprocess.CompletedProcess(proc.args, int(proc.returncode or 0), _text(stdout), _text(stderr))


def read_both(out: BinaryIO, err: BinaryIO, timeout: float) -> tuple[bytes, bytes]:
    """Both pipes to their end (a process may fill one while the other is read)."""
    chunks: dict[BinaryIO, list[bytes]] = {out: [], err: []}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for pipe in chunks:
            selector.register(pipe, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired("python -m bridge", timeout)
            for key, _ in selector.select(left):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fileobj].append(data)  # type: ignore[index]
                else:
                    selector.unregister(key.fileobj)
    return b"".join(chunks[out]), b"".join(chunks[err])


def _text(data: bytes) -> str:
    """As `subprocess.run(text=True)` decodes: the locale's encoding, universal newlines."""
    return io.TextIOWrapper(io.BytesIO(data)).read()


@dataclass
class BridgeProcess:
    env: dict[str, str]
    mode: str = "serve"
    cwd: Path = REPO
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | Forked | None = None
    log_path: Path | None = None
    open_files: int | None = None  # the process's file limit (ulimit -n), when a test sets one
    host: str = "127.0.0.1"  # where it listens (tests reach it on 127.0.0.1 either way)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_path: Path, wait: bool = True) -> BridgeProcess:
        """Start and, with `wait`, wait until healthy. The port was free when chosen; under xdist another worker may
        take it before the bridge listens: the bridge then says so in one line and exits, and the start moves to a
        fresh port."""
        for attempt in range(3):
            self._spawn(log_path)
            if not wait or self.mode != "serve":
                return self
            try:
                self.wait_healthy()
                return self
            except AssertionError:
                if attempt == 2 or "address is already in use" not in self.logs():
                    raise
                self.port = free_port()
        return self

    def _spawn(self, log_path: Path) -> None:
        self.log_path = log_path
        env = dict(self.env, PORT=str(self.port), HOST=self.host)
        log = log_path.open("w")
        limit = self.open_files

        def limits() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        server = fork_server()
        if server is not None:
            with log, open(os.devnull, "rb") as stdin:
                fds = (stdin.fileno(), log.fileno(), log.fileno())
                self.proc = server.spawn([self.mode], env, self.cwd, fds, limit)
        else:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", self.mode],
                env=env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                preexec_fn=limits if limit is not None else None,
            )

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"bridge exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"bridge not healthy after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def kill(self) -> None:
        """kill -9: no chance to finish or record anything."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def restart(self, log_path: Path | None = None) -> BridgeProcess:
        """Stop (if still running) and start again (on a fresh port if another test took the freed one)."""
        assert self.log_path is not None
        self.stop()
        return self.start(log_path or self.log_path.with_suffix(".2.log"))

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode or 0)

    def post(
        self, body: bytes, content_type: str = "application/json", timestamp: int | None = None, **headers: Any
    ) -> httpx.Response:
        signed = signed_headers(SIGNING_SECRET, body, content_type, timestamp=timestamp)
        signed.update(headers)
        return httpx.post(f"{self.url}/slack/events", content=body, headers=signed, timeout=10)

    def mention(
        self, text: str, channel: str, user: str = "U0123ABCD", **kwargs: Any
    ) -> tuple[dict[str, Any], httpx.Response]:
        """Send an app_mention as Slack would; returns the event and the bridge's answer."""
        event = mention_event(text, channel=channel, user=user, **kwargs)
        response = self.post(event_body(event))
        return event, response


def started_with(marker: str) -> list[int]:
    """Processes whose environment holds `marker` (a test's own folder): a bridge's, and its ingress's."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def leave_in_inbox(
    db_path: Path, text: str, channel: str, event: dict[str, Any] | None = None
) -> tuple[dict[str, Any], bytes, dict[str, str]]:
    """What a process killed between its ack and handing the event over leaves behind: a mention's row (or
    `event`'s) in the events inbox (`<db>.inbox`), written while no bridge runs; returns the event, and the
    request's body and headers as Slack sent them."""
    from bridge.inbox import Inbox

    event = event if event is not None else mention_event(text, channel=channel)
    body = event_body(event)
    headers = {k.lower(): v for k, v in signed_headers(SIGNING_SECRET, body, "application/json").items()}
    inbox = Inbox(f"{db_path}.inbox")
    inbox.open()
    inbox.record(headers["x-slack-signature"], 2**40, headers, body)
    inbox.close()
    return event, body, headers


def inbox_drained(db_path: Path, timeout: float = 10.0) -> None:
    """Every event the bridge acknowledged has been handled: its events inbox (`<db>.inbox`) is empty."""
    inbox = Path(f"{db_path}.inbox")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if inbox.exists():
            with sqlite3.connect(inbox) as db:
                if db.execute("SELECT count(*) FROM inbox").fetchone()[0] == 0:
                    return
        time.sleep(0.05)
    raise AssertionError(f"events still in {inbox} after {timeout}s")


def body_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
