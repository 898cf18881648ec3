"""A workspace's own Letta server whose kind could not be told (it did not answer) gets a stand-in client that sends
nothing and fails as that server unreachable; LettaServers asks again at a use at most every few seconds (uses
waiting behind one ask share its answer), keeps the stand-in while the server does not answer, and replaces it with
the real client once it does."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from bridge.clients import LettaServers, own_letta_client
from bridge.config import Settings
from bridge.letta.client import LettaClient
from bridge.letta.errors import KeyOrigin, LettaError
from bridge.letta.kind_untold import KindUntold
from bridge.store import Store
from tests.unit.test_store import run

SETTINGS = Settings(letta_base_url="http://127.0.0.1:9")
OWN_KEY = KeyOrigin("the key given to `/letta setup` for this workspace", "a workspace admin or owner")


def servers_answering(
    store: Store, answers: list[bool], ask_every: float = 0.0, takes: float = 0.0
) -> tuple[LettaServers, list[LettaClient]]:
    """LettaServers whose server answers the kind's question as `answers` say, in turn, each ask taking `takes`
    seconds, a stand-in asked again `ask_every` seconds apart at most; the clients made."""
    made: list[LettaClient] = []

    async def make(settings: Settings) -> LettaClient:
        await asyncio.sleep(takes)
        down = not answers.pop(0)
        why = LettaError("unreachable", "connection refused", base_url=settings.letta_base_url)
        made.append(KindUntold(settings.letta_base_url, why, OWN_KEY) if down else LettaClient(settings.letta_base_url))
        return made[-1]

    return LettaServers(store, make, ask_every=ask_every), made


def test_a_stand_in_is_kept_while_its_server_does_not_answer_and_replaced_once_it_does(database_url: str) -> None:
    """Each use asks again; no answer keeps the same stand-in (so the workspace's kit stays), an answer replaces it
    with the real client, asked no more."""

    async def body(store: Store) -> None:
        servers, made = servers_answering(store, [False, False, True])
        first = await servers.get(SETTINGS)
        assert first.client is made[0] and first.client.kind_guessed
        assert (await servers.get(SETTINGS)) is first and len(made) == 2
        answered = await servers.get(SETTINGS)
        assert answered.client is made[2] and not answered.client.kind_guessed
        assert (await servers.get(SETTINGS)) is answered and len(made) == 3
        await servers.aclose()

    run(database_url, body)


def test_uses_waiting_behind_one_ask_of_a_down_server_share_its_answer(database_url: str) -> None:
    """Five turns of a workspace whose own server drops packets (each ask waits LETTA_CONNECT_TIMEOUT, here 0.5 s)
    reach LettaServers.get at once: one asks, the four waiting behind it take its answer, none asks again."""

    async def body(store: Store) -> None:
        servers, made = servers_answering(store, [False] * 6, ask_every=0.2, takes=0.5)
        await servers.get(SETTINGS)
        await asyncio.sleep(0.3)  # past the pause between two asks
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(servers.get(SETTINGS) for _ in range(5)))
        took = asyncio.get_running_loop().time() - started
        await servers.aclose()
        assert len(made) == 2 and took < 0.9, (len(made), round(took, 2))

    run(database_url, body)



def test_a_use_while_the_answered_servers_client_is_set_up_gets_the_real_client(database_url: str) -> None:
    """Once the server answered, a use arriving while its real client is set up (the journal read for group sends
    left going, slow on a busy database) waits for it: never handed the old stand-in, closed by then, which would fail
    the mention as Letta unreachable though the server just answered (review secKQ of 145fdca)."""

    async def body(store: Store) -> None:
        servers, _ = servers_answering(store, [False, True], ask_every=0.2)
        assert (await servers.get(SETTINGS)).client.kind_guessed
        await asyncio.sleep(0.25)  # past ask_every: the next use asks again, and this time the server answers
        read = store.steps_left_going

        async def slow(*a: object, **k: object) -> object:
            await asyncio.sleep(0.3)
            return await read(*a, **k)  # type: ignore[arg-type]
        store.steps_left_going = slow  # type: ignore[method-assign]
        asking = asyncio.create_task(servers.get(SETTINGS))
        await asyncio.sleep(0.1)  # the server answered; its client is being set up
        other = await servers.get(SETTINGS)
        assert other is await asking and not other.client.kind_guessed
        await servers.aclose()

    run(database_url, body)

def test_a_stand_in_answers_at_once_between_two_asks_of_its_server(database_url: str) -> None:
    """A server whose kind could not be told is asked again at most every `ask_every` seconds: a use in between
    gets the stand-in at once, without waiting on the server; the first use after the pause asks again."""

    async def body(store: Store) -> None:
        servers, made = servers_answering(store, [False, True], ask_every=0.4, takes=0.3)
        first = await servers.get(SETTINGS)
        started = asyncio.get_running_loop().time()
        assert (await servers.get(SETTINGS)) is first and len(made) == 1
        assert asyncio.get_running_loop().time() - started < 0.1
        await asyncio.sleep(0.4)
        answered = await servers.get(SETTINGS)
        assert answered.client is made[1] and not answered.client.kind_guessed
        await servers.aclose()

    run(database_url, body)


def test_a_stand_in_sends_nothing_and_fails_as_its_server_unreachable() -> None:
    """Its calls fail at once, not tried again, with the failure the kind's question met and the workspace's key
    origin, so the thread says Letta is unreachable in the usual words."""

    async def body() -> None:
        why = LettaError("unreachable", "connection refused")
        client = KindUntold("http://127.0.0.1:9", why, OWN_KEY)
        with pytest.raises(LettaError) as raised:
            await client.list_agents(limit=1)
        assert raised.value.kind == "unreachable" and raised.value.key_origin is OWN_KEY
        assert "couldn't reach the Letta server at http://127.0.0.1:9" in raised.value.explain("ari")
        await client.aclose()

    asyncio.run(body())


def test_asked_again_is_logged_for_a_server_in_use_not_for_a_url_only_checked(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`/letta setup`'s check of a URL (own_letta_client alone) saves nothing when the server does not answer, so
    the log must not promise to ask it again; a workspace's server in use (LettaServers) says it is, once."""

    async def body(store: Store) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed = Settings(letta_base_url=f"http://127.0.0.1:{probe.getsockname()[1]}")
        checked = await own_letta_client(closed)
        await checked.aclose()
        assert checked.kind_guessed and "asked again" not in caplog.text, caplog.text
        servers = LettaServers(store, own_letta_client, ask_every=0.0)
        await servers.get(closed)
        await servers.get(closed)
        await servers.aclose()
        assert caplog.text.count("could not be told: it did not tell it") == 1, caplog.text
        assert caplog.text.count("asked again") == 1, caplog.text

    caplog.set_level(logging.INFO)
    run(database_url, body)


def test_a_server_that_answered_an_error_is_not_said_to_have_not_answered(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """secKQ: a server answering HTTP 502 to the kind's question was logged "it did not answer (… it answered HTTP
    502 …)"; the line says it did not tell it, the reason in brackets."""

    async def make(settings: Settings) -> LettaClient:
        why = LettaError("unreachable", "it answered HTTP 502", status=502, base_url=settings.letta_base_url)
        return KindUntold(settings.letta_base_url, why, OWN_KEY)

    async def body(store: Store) -> None:
        servers = LettaServers(store, make)
        await servers.get(SETTINGS)
        await servers.aclose()
        assert "could not be told: it did not tell it (" in caplog.text, caplog.text
        assert "did not answer" not in caplog.text, caplog.text

    caplog.set_level(logging.WARNING)
    run(database_url, body)
