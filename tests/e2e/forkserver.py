"""Start `python -m bridge ...` for the end-to-end tests without paying for its imports each time.

Most of a bridge process's start-up CPU is importing Python modules (about 0.6 s of 0.8 s), and the quick suite
starts a few hundred of them. So each test worker keeps one fork server: an interpreter that imports every bridge
module once and then, per command, forks a child that takes the test's argv, environment, working folder, file
limit and stdin/stdout/stderr, and runs `bridge/__main__.py` as `python -m bridge` would. The child is a process of
its own: signals, `kill -9`, its exit status, atexit, non-daemon threads and the interpreter's shutdown behave as
for a fresh interpreter. The one difference is that its modules were imported before its environment was set,
which no bridge module minds (none reads the environment when imported). Start-up itself is tested with fresh
interpreters (test_start_failures.py, test_init.py's terminal session, test_exit_codes.py's missing asyncpg;
test_forkserver.py compares both ways), and `E2E_FRESH_PROCESSES=1` makes every start a fresh one.
"""

from __future__ import annotations

import atexit
import gc
import io
import json
import os
import pkgutil
import resource
import runpy
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FRESH = os.environ.get("E2E_FRESH_PROCESSES", "") not in ("", "0")
_MESSAGE = 1 << 20


# --- the server (run as `python -m tests.e2e.forkserver SOCKET`) ---


@dataclass
class Request:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    open_files: int | None
    fds: list[int]  # stdin, stdout, stderr


def preload() -> None:
    """Import every bridge module, as the commands would between them."""
    import bridge

    for module in pkgutil.walk_packages(bridge.__path__, "bridge."):
        if module.name != "bridge.__main__":
            import_module(module.name)


def serve(path: str) -> Request:
    """Fork a child per request; returns only in a child, with what it is to become. Each request's connection
    gets the child's pid, then its exit status (as `Popen.returncode` gives it) once it has ended. Standard input
    is the test worker's pipe: its end (the worker stopped the server, or died) ends the server."""
    preload()
    if threading.active_count() != 1:  # a fork copies only the forking thread: nothing may run beside it
        raise RuntimeError(f"importing the bridge started threads: {threading.enumerate()}")
    # What was imported stays shared with the children: no garbage collection of theirs walks it (which writes to
    # every page and so copies it); a child's exit costs 0.05 s of CPU instead of 0.18 s.
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    print("ready", flush=True)
    waiting: dict[int, socket.socket] = {}
    while True:
        readable, _, _ = select.select([listener.fileno(), wake_read, sys.stdin.fileno()], [], [])
        if sys.stdin.fileno() in readable and not os.read(sys.stdin.fileno(), 4096):
            raise SystemExit(0)
        if wake_read in readable:
            os.read(wake_read, 4096)
            _reap(waiting)
        if listener.fileno() not in readable:
            continue
        conn, _ = listener.accept()
        message, fds, _, _ = socket.recv_fds(conn, _MESSAGE, 3)
        if not message:  # the test went away before asking
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            for other in (listener, conn, *waiting.values()):
                other.close()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(wake_read)
            os.close(wake_write)
            return Request(**json.loads(message), fds=fds)
        for fd in fds:
            os.close(fd)
        conn.send(str(pid).encode())
        waiting[pid] = conn


def _reap(waiting: dict[int, socket.socket]) -> None:
    while waiting:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        conn = waiting.pop(pid, None)
        if conn is not None:
            try:
                conn.send(str(os.waitstatus_to_exitcode(status)).encode())
            except OSError:
                pass  # the test gave up on it
            conn.close()


def _stream(fd: int, encoding: str, unbuffered: bool, errors: str) -> io.TextIOWrapper:
    """Standard output or error as a fresh interpreter builds it for this environment."""
    raw = io.FileIO(fd, "w", closefd=False)
    binary: Any = raw if unbuffered else io.BufferedWriter(raw)
    return io.TextIOWrapper(
        binary, encoding=encoding, errors=errors, line_buffering=raw.isatty(), write_through=unbuffered
    )


def become(request: Request) -> None:
    """Turn this child into `python -m bridge ARGS`; its SystemExit ends the interpreter as the command's would."""
    for target, fd in enumerate(request.fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request.cwd)
    os.environ.clear()
    os.environ.update(request.env)
    time.tzset()  # an interpreter reads TZ as it starts
    if request.open_files is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (request.open_files, request.open_files))
    unbuffered = bool(request.env.get("PYTHONUNBUFFERED"))
    encoding = sys.stdout.encoding
    sys.stdout = _stream(1, encoding, unbuffered, "strict")
    sys.stderr = _stream(2, encoding, True, "backslashreplace")
    sys.argv = ["bridge", *request.argv]
    sys.path[0] = request.cwd  # `python -m` puts the working folder first
    runpy.run_module("bridge", run_name="__main__", alter_sys=True)


# --- the client (the test worker) ---


class Forked:
    """A forked command, with the part of `subprocess.Popen`'s interface the harness uses."""

    def __init__(self, args: list[str], conn: socket.socket) -> None:
        self.args = args
        self._conn = conn
        self.pid = int(conn.recv(64))
        self.returncode: int | None = None

    def _status(self, timeout: float | None) -> int | None:
        if self.returncode is None:
            ready, _, _ = select.select([self._conn], [], [], timeout)
            if not ready:
                return None
            said = self._conn.recv(64)
            self._conn.close()
            self.returncode = int(said) if said else -signal.SIGKILL  # no answer: the fork server itself is gone
        return self.returncode

    def poll(self) -> int | None:
        return self._status(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._status(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    def __init__(self) -> None:
        self._folder = tempfile.mkdtemp(prefix="bridge-fork-")
        self.path = os.path.join(self._folder, "socket")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LETTA_", "BRIDGE_"))}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.forkserver", self.path],
            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the fork server did not start (exit status {self._proc.wait()})")

    def spawn(
        self, argv: list[str], env: dict[str, str], cwd: Path, fds: tuple[int, int, int], open_files: int | None = None
    ) -> Forked:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        conn.connect(self.path)
        request = {"argv": argv, "env": env, "cwd": str(cwd), "open_files": open_files}
        socket.send_fds(conn, [json.dumps(request).encode()], list(fds))
        return Forked([sys.executable, "-m", "bridge", *argv], conn)

    def stop(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        shutil.rmtree(self._folder, ignore_errors=True)


_server: ForkServer | None = None
_lock = threading.Lock()


def fork_server() -> ForkServer | None:
    """This worker's fork server, started on first use; None when E2E_FRESH_PROCESSES asks for fresh ones."""
    global _server
    if FRESH:
        return None
    with _lock:
        if _server is None:
            _server = ForkServer()
            atexit.register(stop_fork_server)
        return _server


def stop_fork_server() -> None:
    """Stop this worker's fork server, if it started one (the bridges it forked are the tests' to stop)."""
    global _server
    with _lock:
        if _server is not None:
            _server.stop()
            _server = None


if __name__ == "__main__":
    become(serve(sys.argv[1]))
