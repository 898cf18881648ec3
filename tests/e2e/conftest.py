"""Fixtures: the fakes on loopback, and one bridge process per runner ("server" on a 0.11.7 fake, "bridge" on 0.16.8),
on SQLite, or on Postgres where a test module asks for it (`world_params`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.forkserver import stop_fork_server
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

SERVER_VERSION = {"server": "0.11.7", "bridge": "0.16.8"}
_channels = itertools.count(1)


def pytest_sessionfinish(session: pytest.Session) -> None:
    stop_fork_server()


def new_channel() -> str:
    return f"C{next(_channels):04d}TEST"


@dataclass
class Crew:
    """A bound channel with its group and agents on the fake Letta."""

    channel: str
    group_id: str
    agents: dict[str, str]  # name -> id


@dataclass
class World:
    runner: str
    slack: FakeSlack
    letta: FakeLetta
    bridge: BridgeProcess
    env: dict[str, str]

    def crew(self, names: tuple[str, ...] = ("alice", "bob", "carol"), description: str = "Research crew") -> Crew:
        agents = {name: self.letta.add_agent(name) for name in names}
        group_id = self.letta.add_group(list(agents.values()), description=description)
        return Crew(new_channel(), group_id, agents)

    def connect(self, channel: str, *target: str, runner: str | None = None) -> None:
        args = ["channels", "connect", channel, *target]
        if runner:
            args += ["--runner", runner]
        done = run_cli(self.env, *args)
        assert done.returncode == 0, done.stderr + done.stdout

    def bound_crew(self, names: tuple[str, ...] = ("alice", "bob", "carol")) -> Crew:
        crew = self.crew(names)
        self.slack.add_channel(crew.channel, f"chan-{crew.channel.lower()}")
        self.connect(crew.channel, crew.group_id)
        return crew


def postgres_env(url: str) -> dict[str, str]:
    """Settings for a bridge on a Postgres database; a short lease, so that a killed process's bindings are taken
    over within seconds."""
    return {"DATABASE_URL": url, "TURN_LEASE_SECONDS": "2"}


def backend_env(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    """{} for SQLite (the harness's default file), or the settings for a fresh Postgres database."""
    if backend == "sqlite":
        return {}
    return postgres_env(request.getfixturevalue("pg_server").create_database())


@contextmanager
def open_world(runner: str, tmp: Path, **settings: str) -> Iterator[World]:
    slack = FakeSlack()
    slack.start()
    slack.add_user("U0123ABCD", "maria", display_name="maria", real_name="Maria Example")
    letta = FakeLetta(version=SERVER_VERSION[runner])
    letta.start()
    env = base_env(slack.api_url, letta.base_url, tmp / "bridge.db", **settings)
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        yield World(runner, slack, letta, bridge, env)
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()


def world_fixture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """`runner` or `runner-postgres`."""
    runner, _, backend = str(request.param).partition("-")
    tmp = tmp_path_factory.mktemp(f"world-{request.param}")
    with open_world(runner, tmp, **backend_env(request, backend or "sqlite")) as world:
        yield world


@pytest.fixture(scope="module", params=["server", "bridge"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from world_fixture(request, tmp_path_factory)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[FakeSlack, FakeLetta, Path]]:
    """Fakes for a test that starts its own bridge (unusual settings, restarts, outages)."""
    slack = FakeSlack()
    slack.start()
    slack.add_user("U0123ABCD", "maria", display_name="maria")
    letta = FakeLetta(version="0.16.8")
    letta.start()
    try:
        yield slack, letta, tmp_path
    finally:
        letta.stop()
        slack.stop()
