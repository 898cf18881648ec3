"""Options for a run, and a stage: the fakes in their process, channels bound, the bridge started."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.fakes_proc import Crew, FakesProcess
from bench.procs import Server, bind, bridge_env

OUT = Path(__file__).resolve().parent / "out"
LETTA_VERSION = {"server": "0.11.7", "bridge": "0.16.8"}  # the version decides which runner `auto` picks
RUNNERS = ("server", "bridge")


@dataclass
class Options:
    """Sizes and durations of every benchmark; `quick()` is the smoke-run variant."""

    ack_rate: float = 200.0
    ack_seconds: float = 30.0
    null_seconds: float = 10.0
    ack_isolated_seconds: float = 10.0  # a run with every turn parked at Letta: the ack path alone
    ack_channels: int = 50
    ack_runner: str = "bridge"
    drain_timeout: float = 120.0
    overhead_turns: int = 200
    fanout_channels: int = 200
    fanout_server_turn: float = 2.0  # seconds Letta takes for one group send (split over the agents)
    fanout_agent_delay: float = 2.0  # seconds Letta takes per agent send (bridge runner)
    busy_mentions: int = 20
    busy_agent_delay: float = 0.25
    notice_mentions: int = 100  # mentions queued in one thread behind a turn that holds the channel
    notice_agent_delay: float = 0.05
    store_backlog: int = 10_000  # the long queue of the store's per-turn cost figure (the short one is 10)
    store_cycles: int = 1000
    memory_turns: int = 1000
    startup_runs: int = 3
    store_events: int = 10_000
    store_duplicates: float = 0.2  # share of deliveries that repeat an earlier one
    max_concurrent_turns: int | None = None  # MAX_CONCURRENT_TURNS for fan-out; None: one per channel
    fanout_default_limit: int = 1  # also run the server-runner fan-out at the bridge's default MAX_CONCURRENT_TURNS
    out: Path = OUT

    @classmethod
    def quick(cls) -> Options:
        return cls(
            ack_rate=100.0,
            ack_seconds=3.0,
            null_seconds=2.0,
            ack_isolated_seconds=2.0,
            ack_channels=10,
            drain_timeout=30.0,
            overhead_turns=20,
            fanout_channels=20,
            fanout_server_turn=0.5,
            fanout_agent_delay=0.5,
            busy_mentions=5,
            busy_agent_delay=0.1,
            notice_mentions=20,
            store_backlog=1000,
            store_cycles=200,
            memory_turns=100,
            startup_runs=1,
            store_events=1000,
        )


@dataclass
class Stage:
    fakes: FakesProcess
    bridge: Server
    crews: list[Crew]


@contextmanager
def fakes(runner: str) -> Iterator[FakesProcess]:
    process = FakesProcess(LETTA_VERSION[runner])
    try:
        yield process
    finally:
        process.close()


def server(kind: str, proc: FakesProcess, folder: Path, **extra: str) -> Server:
    """A server of `kind` pointed at the fakes, with its own SQLite file and log in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "bridge.db"
    for stale in folder.glob("bridge.db*"):
        stale.unlink()
    env = bridge_env(proc.slack_api_url, proc.letta_url, db, **extra)
    return Server(kind, env, folder / f"{kind}.log")


def relay(proc: FakesProcess, crews: list[Crew], runner: str, folder: Path) -> Server:
    """The simplest complete app (`bench/relay_app.py`) for `crews`, making `runner`'s calls."""
    folder.mkdir(parents=True, exist_ok=True)
    table = {c.channel: {"group": c.group_id, "agents": [list(a) for a in c.agents]} for c in crews}
    (folder / "crews.json").write_text(json.dumps(table))
    return server("relay", proc, folder, RELAY_RUNNER=runner, RELAY_CREWS=str(folder / "crews.json"))


@contextmanager
def stage(
    name: str,
    runner: str,
    opts: Options,
    channels: int,
    delay: float = 0.0,
    agents: int = 2,
    kill: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[Stage]:
    """Fakes for `runner`, `channels` bound crews, and a started bridge; stopped (or killed) on exit."""
    with fakes(runner) as proc:
        crews = proc.crews(name[:3].upper(), channels, agents, delay)
        bridge = server("bridge", proc, opts.out / name, **(env or {}))
        bind(Path(bridge.env["DATABASE_URL"].removeprefix("sqlite:///")), crews)
        bridge.start()
        try:
            yield Stage(proc, bridge, crews)
        finally:
            bridge.stop(kill=kill)
