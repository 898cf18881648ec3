"""The real-server stage: real Letta 0.16.8 (Postgres + pgvector, with and without Redis) and 0.11.7 (SQLite),
started on loopback by ../shared/tools/real-letta/letta-server.sh, each driven by the fake LLM of llm.py.

Everything here is marked `real` (left out of the quick suite). A developer without ../shared/tools beside the clone
gets a clean skip; with REAL_STAGE_REQUIRED=1 (CI, .ci/real-stage) a server that cannot start fails the stage.
Set REAL_LETTA_HOME where `letta-server.sh install` put the servers (default ~/.cache/real-letta).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import REPO, free_port
from tests.real.letta_setup import Setup
from tests.real.llm import FakeLLM

TOOL = REPO.parent / "shared" / "tools" / "real-letta" / "letta-server.sh"
REQUIRED = os.environ.get("REAL_STAGE_REQUIRED") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.real)


@dataclass
class Server:
    kind: str  # "0.11.7", "0.16.8", "0.16.8+redis"
    version: str
    url: str
    port: int
    setup: Setup


@dataclass
class Stage:
    llm: FakeLLM
    servers: dict[str, Server]


def _tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(TOOL), *args], capture_output=True, text=True, timeout=300)


def quiet_port() -> int:
    """A free port below the kernel's ephemeral range. The tool's PostgreSQL listens on a fixed port (55432 by
    default), which lies inside that range: any outgoing connection of the stage's own processes can hold it as
    its local port, and PostgreSQL then cannot start ("Address already in use", seen once in CI)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(20000, min(low, 32768)), 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


@pytest.fixture(scope="session")
def stage() -> Iterator[Stage]:
    if not TOOL.exists():
        if REQUIRED:
            pytest.fail(f"the real-server stage needs {TOOL}, which is missing")
        pytest.skip(f"no {TOOL}: the real-server stage runs where ../shared/tools is beside the clone")
    os.environ.setdefault("REAL_LETTA_PG_PORT", str(quiet_port()))  # read by the tool (its subprocesses inherit it)
    _tool("stop", "all")  # a PostgreSQL left running on another port by an earlier run would be taken as this one
    llm = FakeLLM()
    llm_url = llm.start()
    wanted = [("0.11.7", "0.11.7", ()), ("0.16.8", "0.16.8", ()), ("0.16.8+redis", "0.16.8", ("redis",))]
    servers: dict[str, Server] = {}
    try:
        for kind, version, extra in wanted:
            port = free_port()
            done = _tool("start", version, str(port), llm_url, *extra)
            if done.returncode != 0:
                message = f"letta {kind} did not start:\n{done.stderr[-3000:]}"
                if REQUIRED:
                    pytest.fail(message)
                pytest.skip(message)
            url = f"http://127.0.0.1:{port}"
            servers[kind] = Server(kind, version, url, port, Setup(url, version, llm_url))
        yield Stage(llm, servers)
    finally:
        for server in servers.values():
            _tool("stop", str(server.port))
        _tool("stop", "all")
        llm.stop()
