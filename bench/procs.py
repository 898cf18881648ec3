"""Servers under test as subprocesses (`python -m bridge serve`, the bare Bolt app, the null app).

Also: writing many bindings with the project's store API, and reading a process's memory from /proc.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.fakes_proc import Crew
from bridge.domain import AgentRef, Binding, Target
from bridge.store import open_store
from tests.e2e.harness import REPO, base_env, free_port

TEAM_ID = "T0123ABCD"  # the fake Slack's workspace, which the bot token belongs to

MODULES = {
    "bridge": ("bridge", "serve"),
    "bare": ("bench.bare_app",),
    "recording": ("bench.recording_app",),
    "relay": ("bench.relay_app",),
    "null": ("bench.null_app",),
}


def bridge_env(slack_api_url: str, letta_url: str, db_path: Path, **extra: str) -> dict[str, str]:
    """The environment a user would set, pointed at the fakes (as tests/e2e/harness.py does), with the bridge's
    own defaults where the tests' environment changes one for its assertions."""
    env = base_env(slack_api_url, letta_url, db_path)
    del env["SLACK_WORKING_AFTER_SECONDS"]
    env.update(extra)
    return env


async def _bind(db_url: str, crews: list[Crew]) -> None:
    store = open_store(db_url)
    await store.open()
    try:
        for crew in crews:
            agents = tuple(AgentRef(agent_id, name) for agent_id, name in crew.agents)
            target = Target("group", agents, crew.group_id, "round_robin", "bench crew")
            await store.put_binding(Binding(TEAM_ID, crew.channel, target, bound_by="bench"))
    finally:
        await store.close()


def bind(db_path: Path, crews: list[Crew]) -> None:
    """Bind each crew's channel to its group, as `channels connect` would, straight into the store."""
    asyncio.run(_bind(f"sqlite:///{db_path}", crews))


def descendants(pid: int) -> list[int]:
    """The processes a process started (the bridge's ingress process), theirs too, from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def private_kib(pid: int) -> int:
    """Memory only this process uses (Private_Clean + Private_Dirty, KiB): what a forked child adds to its parent,
    whose resident set already holds the pages they share."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Private_Clean", "Private_Dirty"):
            total += int(value.split()[0])
    return total


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in KiB, from /proc/<pid>/status; with `children_private`, the
    memory its child processes use that it does not share with them, which VmRSS and VmHWM then include."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    children = sum(private_kib(child) for child in descendants(pid))
    if children:
        out["children_private"] = children
        out["VmRSS"] += children
        out["VmHWM"] += children
    return out


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system (kernel) CPU seconds of a process and all its threads so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and all its threads so far."""
    return sum(cpu_split(pid))


def tree_cpu_split(pid: int) -> tuple[float, float]:
    """`cpu_split` of a process and the processes it started (a server's whole CPU: the bridge's ingress too)."""
    splits = [cpu_split(p) for p in (pid, *descendants(pid))]
    return sum(u for u, _ in splits), sum(k for _, k in splits)


@dataclass
class Server:
    """One server process. `start()` returns seconds from spawn to the first 200 on /healthz."""

    kind: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    spy: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> float:
        env = dict(self.env, PORT=str(self.port), HOST="127.0.0.1")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            began = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *MODULES[self.kind]], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() - began < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}; see {self.log_path}")
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        seconds = time.monotonic() - began
                        self._profile()
                        return seconds
                except httpx.HTTPError:
                    pass
                time.sleep(0.005)
        raise RuntimeError(f"{self.kind} not healthy after {timeout:g}s; see {self.log_path}")

    def _profile(self) -> None:
        """With BENCH_PROFILE=<folder>, sample the bridge with py-spy (collapsed stacks) until it stops;
        BENCH_PROFILE_ARGS adds py-spy options (`--gil` samples only the thread holding the interpreter lock);
        BENCH_PROFILE_FORMAT=speedscope keeps the samples in time order (with `--idle`, a timeline)."""
        folder = os.environ.get("BENCH_PROFILE")
        if not folder or self.kind != "bridge" or self.proc is None:
            return
        spy = Path(sys.executable).with_name("py-spy")
        out = Path(folder) / f"{self.log_path.parent.name}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        self.spy = subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(self.proc.pid),
                "--rate",
                os.environ.get("BENCH_PROFILE_RATE", "200"),
                "--format",
                os.environ.get("BENCH_PROFILE_FORMAT", "raw"),
                "--nonblocking",
                "--output",
                str(out),
                *os.environ.get("BENCH_PROFILE_ARGS", "").split(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self, grace: float = 30.0, kill: bool = False) -> int:
        """SIGTERM (the bridge finishes turns in flight) and wait; `kill` skips straight to SIGKILL."""
        if self.spy is not None:
            self.spy.send_signal(signal.SIGINT)
            self.spy.wait(30)
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode or 0)

    def rss_kib(self) -> dict[str, int]:
        return rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        return sum(tree_cpu_split(self.pid))

    def cpu_split(self) -> tuple[float, float]:
        return tree_cpu_split(self.pid)
