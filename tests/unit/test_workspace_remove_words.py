"""What `workspaces remove` says when the workspace's Letta answered the denial of a waiting tool call with an error:
what Letta answered, never that it "did not answer" (the admin would look for a server that is down while it is up),
and never "ask again" (the workspace is removed and its calls settled: running the command again answers that it is
not installed), nor the bridge's own error codes as if Letta had said them. Found by second readers revDU, revDV
and revDX."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bridge.config import Settings
from bridge.store import open_store
from bridge.store.approvals import ApprovalStore, Asked
from bridge.store.crypto import Cipher
from bridge.store.installations import BridgeInstallationStore
from bridge.workspace_admin import remove_workspace
from tests.loopback import serving
from tests.unit.test_installations import install
from tests.unit.test_stop_cancel import BOB, TURN

KEY = Fernet.generate_key().decode()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def removed(tmp_path: Path, letta_answers: Handler) -> str:
    """`workspaces remove T1` of a workspace with its own Letta server (`/letta setup`) answering `letta_answers`,
    one of its turns waiting on a tool call; what the command says."""
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    hits: list[str] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        return await letta_answers(request)

    async def main() -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        async with serving(app) as port:
            letta = f"http://127.0.0.1:{port}"
            settings = Settings(
                slack_client_id="1.2", slack_client_secret="s", database_url=url,
                bridge_encryption_key=SecretStr(KEY), slack_api_url="http://127.0.0.1:9/api/", letta_base_url=letta,
                letta_connect_timeout=1.0,
            )
            store = open_store(url)
            await store.open()
            installs = BridgeInstallationStore(store, Cipher(KEY))
            await installs.async_save(install("T1"))
            await installs.set_letta("T1", letta, "sk-rotated", "U1")
            turn_id = await store.accept_turn(TURN, "otid-1")
            assert turn_id is not None and await store.take_turn(turn_id)
            await ApprovalStore(store).ask([Asked(turn_id, BOB.id, "call-1", "T1", "C1", "1.000001", BOB.id,
                                                  "bob", None, "req-1", "shout", "{}", "U1")])
            await store.close()
            said = await remove_workspace(settings, "T1")
        assert hits, "the denial was never sent"
        assert said is not None and "removed" in said, said
        assert "did not answer" not in said and "ask again" not in said.lower(), said
        assert "T1 were not denied" in said and "approve or deny them in letta" in said.lower(), said
        return said

    return asyncio.run(main())


def test_a_refused_key_is_said_with_who_may_set_it(tmp_path: Path) -> None:
    async def refuse(request: web.Request) -> web.Response:  # as reference/letta/0.16.8/auth-wrong.json
        return web.json_response({"detail": "Unauthorized"}, status=401)

    said = removed(tmp_path, refuse)
    assert "rejected the bridge's API key (HTTP 401)" in said, said
    assert "the key given to `/letta setup` for this workspace" in said, said


def test_a_redirect_is_said_as_the_url_to_set(tmp_path: Path) -> None:
    async def redirect(request: web.Request) -> web.Response:  # http:// where Letta now serves https://
        raise web.HTTPPermanentRedirect("https://letta.acme.test" + request.path)

    assert "redirect" in removed(tmp_path, redirect)


def test_a_failure_of_letta_is_said_as_what_it_answered(tmp_path: Path) -> None:
    async def fail(request: web.Request) -> web.Response:
        if request.path.startswith("/v1/health"):
            return web.json_response({"version": "0.16.8", "status": "ok"})
        if request.method == "GET":
            return web.json_response([])
        return web.json_response({"detail": "An unexpected error occurred"}, status=500)

    said = removed(tmp_path, fail)
    assert "Letta answered HTTP 500: An unexpected error occurred." in said, said
    assert "while the agent was answering" not in said, said


async def _health_or(request: web.Request) -> web.Response | None:
    if request.path.startswith("/v1/health"):
        return web.json_response({"version": "0.16.8", "status": "ok"})
    if request.method == "GET":
        return web.json_response([])
    return None


async def _stream(request: web.Request, *chunks: bytes) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for chunk in chunks:
        await response.write(chunk)
    return response


def test_an_unreadable_answer_is_said_in_words(tmp_path: Path) -> None:
    async def not_json(request: web.Request) -> web.StreamResponse:
        return await _health_or(request) or await _stream(request, b"data: <html>oops</html>\n\n", b"data: [DONE]\n\n")

    said = removed(tmp_path, not_json)
    assert "Letta's answer could not be read" in said and "bad_response" not in said, said


def test_a_cut_answer_is_not_said_as_refused(tmp_path: Path) -> None:
    async def cut(request: web.Request) -> web.StreamResponse:  # ends without [DONE] nor a stop reason
        return await _health_or(request) or await _stream(request, b": keep-alive\n\n")

    said = removed(tmp_path, cut)
    assert "may or may not have been taken" in said and "answered disconnected" not in said, said

