"""AppServerClient against a real Letta App Server (PyPI letta==0.34.12), started by the shared script with the
tiny fake model of fake_model.py. Skipped when ../shared/tools is absent.

What the real 0.34.12 server did that the 0.32.18 captures had not shown (seen while writing these tests):
- It exits within a second of losing its parent process: Letta Code's orphan detection polls `process.ppid`
  and exits when it becomes 1. `letta-server.sh start` backgrounds it and returns, so unless the caller is a
  child subreaper (as `_subreaper` makes this process) or outlives it otherwise, the server is gone before the
  first request. Nothing is logged.
- `conversation_create` takes `summary` in its body and stores it (the captures only show `conversation_update`).
- `turn_finished.turn_id` is `turn-<uuid>` (0.32.18: `batch-direct-<uuid>` / `batch-<n>`).
- `/app-server-info` lists two more capabilities (`agent_free_conversations`, `launch_subagent_notify_caller`);
  `protocol_version` is still 1.
- An agent made with `agent_create` has only the `git-memory-enabled` tag, and `description: null` when none
  was given.
- With `client_tool_allowlist: []` the model is offered no tools at all (the request's `tools` is empty).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bridge.letta.appserver import AppServerClient, Finished, TextDelta, TurnEvent, conversation_stuck
from bridge.letta.errors import Kind
from tests.real.conftest import REQUIRED
from tests.real.fake_model import MODEL, FakeModel

pytestmark = pytest.mark.real

SCRIPT = Path(__file__).resolve().parents[2].parent / "shared" / "tools" / "real-letta" / "letta-server.sh"
HOME = Path(os.environ.get("REAL_LETTA_HOME", Path.home() / ".cache" / "real-letta"))


def _subreaper() -> None:
    """Orphans of this process (the server the script backgrounds) are re-parented here, not to PID 1, so the
    server's orphan detection does not stop it (see the module's docstring). Linux only."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        pytest.skip("cannot become a child subreaper: the App Server would exit with its starter")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def app_server(llm_url: str) -> Iterator[str]:
    """A real App Server driven by the model at `llm_url`, its ws:// URL; skipped (failed where the stage is
    required) when the tool or the server is missing."""
    if not SCRIPT.is_file():
        message = f"no {SCRIPT} (the real-server stage needs ../shared/tools)"
        pytest.fail(message) if REQUIRED else pytest.skip(message)
    if not (HOME / "appserver" / "bin" / "letta").exists():
        message = f"the App Server is not installed under {HOME}: run {SCRIPT} install"
        pytest.fail(message) if REQUIRED else pytest.skip(message)
    _subreaper()
    port = _free_port()
    started = subprocess.run(
        [str(SCRIPT), "start", "app-server", str(port), llm_url], capture_output=True, text=True, timeout=120
    )
    if started.returncode != 0:
        pytest.fail(f"the App Server did not start: {started.stderr[-2000:]}")
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        subprocess.run([str(SCRIPT), "stop", str(port)], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, FakeModel]]:
    model = FakeModel()
    model.start()
    try:
        with app_server(model.url) as url:
            yield url, model
    finally:
        model.stop()


def run(url: str, body: Any, **options: Any) -> Any:
    async def main() -> Any:
        options.setdefault("request_timeout", 30.0)
        client = AppServerClient(url, **options)
        try:
            return await body(client)
        finally:
            await client.aclose(wait=30.0, force=True)

    return asyncio.run(main())


async def make_agent(client: AppServerClient, name: str, model: str = MODEL) -> str:
    body = {"name": name, "model": f"openai-compatible/{model}", "system": f"You are {name}. My name is {name}."}
    frame = {"type": "agent_create", "request_id": client.socket.new_id("agent"), "body": body}
    answer = await client.socket.request(frame, 60.0)
    agent = getattr(answer, "agent", None)
    assert isinstance(agent, dict), answer
    return str(agent["id"])


async def turn(client: AppServerClient, agent: str, conversation: str, otid: str, **kw: Any) -> list[TurnEvent]:
    return [event async for event in client.send(agent, conversation, f"hello {otid}", otid, **kw)]


def test_describe_list_converse_and_look_up(server: tuple[str, FakeModel]) -> None:
    url, model = server
    model.mode = "ok"

    async def body(client: AppServerClient) -> None:
        info = await client.describe()
        assert info.version == "0.34.12" and info.protocol_supported and info.backend == "local"
        alice, bob = await make_agent(client, "alice"), await make_agent(client, "bob")
        assert {alice, bob} <= {a.id for a in await client.all_agents()}
        first = await client.list_agents(limit=1)
        rest = await client.list_agents(limit=5, after=first[0].id)
        assert len(first) == 1 and first[0].id not in {a.id for a in rest} and rest

        conversation = await client.create_conversation(alice, "T1:C1:1700000000.000100")
        assert conversation.summary == "T1:C1:1700000000.000100"
        found = await client.find_conversation(alice, "T1:C1:1700000000.000100")
        assert found is not None and found.id == conversation.id

        events = await turn(client, alice, conversation.id, "otid-real-1", deadline=60)
        assert "".join(e.piece for e in events if isinstance(e, TextDelta)) == "alice says hi"
        finished = events[-1]
        assert isinstance(finished, Finished) and finished.error is None, finished
        assert finished.replies == ("alice says hi",) and finished.stop_reason == "end_turn"
        assert model.requests[-1].get("tools") in (None, [])  # client_tool_allowlist: [] offers no tools

        sent = await client.find_send(conversation.id, "otid-real-1")
        assert sent is not None and sent.replies == ("alice says hi",)
        assert await client.find_send(conversation.id, "otid-never-sent") is None

        gone = await turn(client, alice, "local-conv-999999", "otid-gone", deadline=60)
        assert isinstance(gone[-1], Finished) and gone[-1].error is not None and gone[-1].error.conversation_gone

    run(url, body)


def test_refusals_the_fake_copies(server: tuple[str, FakeModel]) -> None:
    """What tests/fakes/appserver.py answers for an unknown or deleted agent and an unknown conversation, as
    0.34.12 answers it (the fake once made a conversation for any agent id, and closed the socket on an update of
    an unknown conversation)."""
    url, _ = server

    async def body(client: AppServerClient) -> None:
        async def ask(frame: dict[str, Any]) -> dict[str, Any]:
            answer = await client.socket.request({**frame, "request_id": client.socket.new_id("x")}, 30.0)
            said = answer.model_dump(exclude_unset=True)  # as the server wrote it
            return {k: v for k, v in said.items() if k != "request_id"}

        gone = await make_agent(client, "gone")
        assert await ask({"type": "agent_delete", "agent_id": gone}) == {
            "type": "agent_delete_response", "success": True, "agent_id": gone}
        missing = "agent-local-6d8df22e-8027-4e0f-a69e-113e9a94f4c1"
        for agent in (missing, gone):
            made = await ask({"type": "conversation_create", "body": {"agent_id": agent, "summary": "k1"}})
            assert made == {"type": "conversation_create_response", "success": False, "conversation": None,
                            "error": f"Agent {agent} not found"}, made
        updated = await ask({"type": "conversation_update", "conversation_id": "local-conv-999999",
                             "body": {"summary": "k"}})
        assert updated == {"type": "conversation_update_response", "success": False, "conversation": None,
                           "error": "Conversation local-conv-999999 not found"}, updated

    run(url, body)


def test_the_deadline_aborts_and_the_next_message_runs(server: tuple[str, FakeModel]) -> None:
    url, model = server

    async def body(client: AppServerClient) -> None:
        carol = await make_agent(client, "carol")
        conversation = await client.create_conversation(carol, "T1:C1:1700000000.000200")
        model.mode = "slow:4"
        late = await turn(client, carol, conversation.id, "otid-late", deadline=1.5)
        assert isinstance(late[-1], Finished) and late[-1].error is not None
        assert late[-1].error.kind == Kind.TIMEOUT
        model.mode = "ok"
        after = await turn(client, carol, conversation.id, "otid-after", deadline=60)
        assert isinstance(after[-1], Finished) and after[-1].replies == ("carol says hi",), after[-1]

    run(url, body, abort_wait=10.0)


def test_a_socket_closed_mid_turn_leaves_the_conversation_refusing(server: tuple[str, FakeModel]) -> None:
    """The 0.34.12 behaviour the fake copies: the cut conversation refuses inputs (not always), a new one works."""
    url, model = server

    async def body(client: AppServerClient) -> None:
        dave = await make_agent(client, "dave")
        conversation = await client.create_conversation(dave, "T1:C1:1700000000.000300")
        model.mode = "slow:2"
        cut = asyncio.ensure_future(turn(client, dave, conversation.id, "otid-cut"))
        await asyncio.sleep(0.5)
        await client.socket.close(force=True)
        ended = await cut
        assert isinstance(ended[-1], Finished) and ended[-1].error is not None
        assert ended[-1].error.kind == Kind.DISCONNECTED
        await asyncio.sleep(3)
        model.mode = "ok"
        again = AppServerClient(url, request_timeout=30.0)  # a closed client stays closed
        try:
            after = await turn(again, dave, conversation.id, "otid-again", deadline=60)
            assert isinstance(after[-1], Finished)
            # Usually refused until the server restarts; once in a full stage run (a loaded machine) the cut
            # conversation took the next message and answered it. Either way nothing is lost or doubled.
            if after[-1].error is not None:
                assert conversation_stuck(after[-1].error), after[-1].error
            else:
                print("the cut conversation was not stuck this time")
                assert after[-1].replies == ("dave says hi",)
            fresh = await again.create_conversation(dave, "T1:C1:1700000000.000300")
            events = await turn(again, dave, fresh.id, "otid-fresh", deadline=60)
            assert isinstance(events[-1], Finished) and events[-1].replies == ("dave says hi",)
        finally:
            await again.aclose(wait=30.0, force=True)

    run(url, body)


@pytest.mark.slow
def test_a_failing_model_ends_after_the_servers_retries(server: tuple[str, FakeModel]) -> None:
    url, model = server

    async def body(client: AppServerClient) -> None:
        erin = await make_agent(client, "erin")
        conversation = await client.create_conversation(erin, "T1:C1:1700000000.000400")
        model.mode = "500"
        try:
            events = await turn(client, erin, conversation.id, "otid-500", deadline=120)
        finally:
            model.mode = "ok"
        finished = events[-1]
        assert isinstance(finished, Finished) and finished.stop_reason == "llm_api_error"
        assert finished.error is not None and finished.error.detail.startswith("the model provider failed: HTTP 500")

    run(url, body)


def test_an_image_part_is_taken_and_kept_in_history_and_a_broken_one_keeps_the_text(
    server: tuple[str, FakeModel],
) -> None:
    """reference/letta/app-server/README.md §18 on the real server, through the bridge's own client."""
    from bridge.domain import Image
    from bridge.letta.appserver.deltas import UserDelta

    url, model = server
    model.mode = "ok"
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"

    async def body(client: AppServerClient) -> None:
        gus = await make_agent(client, "gus")
        conversation = await client.create_conversation(gus, "T1:C1:1700000000.000500")
        good = await turn(client, gus, conversation.id, "otid-img", deadline=60, images=[Image("image/png", png)])
        assert isinstance(good[-1], Finished) and good[-1].replies == ("gus says hi",), good[-1]
        broken = [Image("image/png", "bm90IGFuIGltYWdl")]
        kept = await turn(client, gus, conversation.id, "otid-broken", deadline=60, images=broken)
        assert isinstance(kept[-1], Finished) and kept[-1].replies == ("gus says hi",), kept[-1]
        messages, _ = await client.history(conversation.id)
        users = {m.otid: m.content for m in messages if isinstance(m, UserDelta)}
        parts, dropped = users["otid-img"], users["otid-broken"]
        assert isinstance(parts, list) and parts[-1].type == "image"
        assert (parts[-1].model_extra or {})["source"]["data"] == png
        assert isinstance(dropped, list) and all(p.type == "text" for p in dropped)  # the image left out, text kept

    run(url, body)
