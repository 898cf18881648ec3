"""What a Letta failure says to people (`explain`, in Slack) and to the operator (`for_operator`), for the failures
whose remedy depends on where the bridge stands: an agent or group Letta no longer knows, a key Letta refuses.

The 404 details are Letta's own words as captured (reference/letta: the agent and group sends and lookups of 0.11.7
and 0.16.8, 0.16.8's conversation made for an unknown agent, the App Server's `Agent agent-local-… not found`), and
the conversation and run lookups that are no target of a binding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from bridge.clients import workspace_key
from bridge.config import Settings
from bridge.letta.appserver_letta import AppServerLetta
from bridge.letta.client import LettaClient
from bridge.letta.errors import KeyOrigin, Kind, LettaError
from tests.fakes.appserver import FakeAppServer
from tests.fakes.letta import FakeLetta

GONE = [
    "Agent with ID agent-00000000-0000-4000-8000-000000000000 not found",  # 0.16.8
    "Group not found with id='['group-00000000-0000-4000-8000-000000000000']', access level in ['read'] for actor=…",
    "Agent not found",  # 0.16.8, a conversation made for an agent it does not know
    "Agent agent-local-00000000-0000-0000-0000-000000000000 not found",  # the App Server
]
NOT_A_TARGET = [
    "Conversation not found with id='['conv-00000000-0000-4000-8000-000000000000']', access level in ['read']",
    "Conversation not found: local-conv-999999",  # the App Server's, as appserver/turn.py words it
    # 0.16.8 with Redis, a stream resumed by an otid it no longer maps (redis-conversations-stream-resume-unknown-otid)
    "No run found for otid=d8d7958f-a12c-4ef8-b1ee-fd5d96a53962. The run may have expired or never existed.",
    "Not Found",
    "",
]


@pytest.mark.parametrize("detail", GONE)
def test_an_agent_or_group_letta_no_longer_knows_is_a_target_gone(detail: str) -> None:
    error = LettaError(Kind.NOT_FOUND, detail, status=404)
    assert error.target_gone
    said = error.explain("alice")
    assert said.startswith("Letta does not know alice") and "deleted" in said
    # The Letta side names no command: the turn adds the Slack one, worded for who may use it (turns.py).
    assert "python -m bridge" not in said and "connect" not in said


@pytest.mark.parametrize("detail", NOT_A_TARGET)
def test_a_404_about_something_else_is_no_reason_to_connect_the_channel_again(detail: str) -> None:
    assert not LettaError(Kind.NOT_FOUND, detail, status=404).target_gone
    assert not LettaError(Kind.INVALID, GONE[0], status=422).target_gone


def test_letta_orm_not_found_is_cut_to_what_it_says() -> None:
    """revDS: 0.11 to 0.16 say a group, conversation or run they do not know with the id as a list's repr, the
    access level and the whole actor's repr (user and organization ids, datetimes): the thread got it verbatim."""
    from bridge.letta.models import ErrorBody
    from tests.reference import LETTA, load

    body = load(LETTA / "0.11.7" / "error-group-send-unknown-wellformed.json")["response"]["body"]
    said = ErrorBody.model_validate(body).describe()
    assert said == "Group not found: group-00000000-0000-4000-8000-000000000000"
    error = LettaError(Kind.NOT_FOUND, said, status=404)
    assert error.target_gone
    assert error.explain("the group").startswith(
        "Letta does not know the group (Group not found: group-00000000-0000-4000-8000-000000000000). It may have"
    )
    gone = ErrorBody(detail="Conversation not found with id='['default']'").describe()
    assert gone == "Conversation not found: default" and LettaError(Kind.NOT_FOUND, gone).conversation_gone


WORKSPACE_KEY = KeyOrigin("the key given to `/letta setup` for this workspace", "a workspace admin or owner")


def test_a_refused_key_is_said_with_where_it_was_set_and_never_the_key() -> None:
    """The environment's key is LETTA_API_KEY, an operator's to check; a workspace's own (OAuth mode) was given to
    `/letta setup`, which its admins run again: LETTA_API_KEY is not theirs to see and did not hold it."""
    env = LettaError(Kind.UNAUTHORIZED, "Unauthorized", status=401, base_url="http://letta:8283")
    assert env.explain().endswith("An operator needs to check LETTA_API_KEY.")
    assert "LETTA_API_KEY is missing, wrong or revoked" in env.for_operator("the health check")
    own = LettaError(Kind.UNAUTHORIZED, "Unauthorized", status=401, base_url="http://x:8283", key_origin=WORKSPACE_KEY)
    said, told = own.explain(), own.for_operator("the health check")
    assert said.endswith(
        "A workspace admin or owner needs to check the key given to `/letta setup` for this workspace."
    )
    assert "the key given to `/letta setup` for this workspace is missing, wrong or revoked" in told
    assert "LETTA_API_KEY" not in said + told


def test_workspace_key_names_the_configured_command() -> None:
    origin = workspace_key(Settings(slack_command="/crew"))
    assert "`/crew setup`" in origin.where and origin.who == "a workspace admin or owner"


def test_each_client_says_its_key_origin_when_the_server_refuses_the_key() -> None:
    """The REST client (its HTTP answers) and the App Server's (`GET /app-server-info`, the socket's handshake)."""

    async def refused(call: Callable[[], Awaitable[object]]) -> LettaError:
        with pytest.raises(LettaError) as caught:
            await call()
        assert caught.value.kind == Kind.UNAUTHORIZED
        return caught.value

    async def main() -> list[LettaError]:
        rest = LettaClient(letta.base_url, api_key="wrong", key_origin=WORKSPACE_KEY)
        app = AppServerLetta(app_server.url, "wrong", key_origin=WORKSPACE_KEY,
                             connect_timeout=0.5, request_timeout=2.0)
        try:
            return [await refused(lambda: rest.list_agents(limit=1)), await refused(app.describe),
                    await refused(lambda: app.list_agents(limit=1))]
        finally:
            await rest.aclose()
            await app.aclose(wait=1.0)

    with FakeLetta(version="0.16.8", api_key="sk-right") as letta:
        app_server = FakeAppServer(token="sk-right")
        app_server.start()
        try:
            errors = asyncio.run(main())
        finally:
            app_server.stop()
    assert [e.key_origin for e in errors] == [WORKSPACE_KEY] * 3
    assert all("`/letta setup`" in e.explain() for e in errors)


def _failures() -> list[LettaError]:
    gateway = LettaError(Kind.SERVER_ERROR, "Cloudflare's 524: Letta took too long", status=524)
    gateway.gateway = "Cloudflare"
    return [
        LettaError(Kind.SERVER_ERROR, "database is locked", status=500),
        gateway,
        LettaError(Kind.DISCONNECTED, "ServerDisconnectedError"),
        LettaError(Kind.QUOTA, "credits used up", status=402),
    ]


@pytest.mark.parametrize("error", _failures(), ids=lambda e: str(e.kind))
def test_a_failed_lookup_is_not_said_as_a_message_an_agent_was_answering(error: LettaError) -> None:
    """A lookup (connect's, status's, the lists') sent no message: it must not be said to have been answering, to
    have maybe reached Letta, or to have been kept from asking an agent twice, as a failed send is."""
    sent, looked_up = error.explain("agent alice"), error.explain("agent alice", looking_up=True)
    send_words = ("was answering", "The message to", "asked twice", "would not run", "dropped while")
    assert any(w in sent for w in send_words), sent  # the send's own words, which a lookup must not borrow
    assert not any(w in looked_up for w in send_words), looked_up
    assert "the bridge's request for agent alice" in looked_up


def test_a_lookup_failure_that_reads_the_same_keeps_the_send_words() -> None:
    refused = LettaError(Kind.UNREACHABLE, "ConnectError", base_url="http://letta.internal:8283")
    assert refused.explain("agent alice", looking_up=True) == refused.explain("agent alice")


def test_a_certificate_not_trusted_here_is_said_so_with_what_to_do() -> None:
    untrusted = LettaError(Kind.UNREACHABLE, "ClientConnectorCertificateError", base_url="https://letta.internal")
    said = untrusted.for_operator("the health check")
    assert "answers, but its TLS certificate is not trusted on this host" in said and "SSL_CERT_FILE" in said, said
    assert "couldn't talk to the Letta server at https://letta.internal securely" in untrusted.explain("alice")
    plain = LettaError(Kind.UNREACHABLE, "ClientConnectorError", base_url="http://letta.internal")
    assert "nothing answers there" in plain.for_operator("the health check") and not plain.tls


def test_a_tls_handshake_failure_names_the_plain_scheme_of_the_urls_own_kind() -> None:
    """A wss:// App Server that serves plain WebSocket was told to write LETTA_BASE_URL with http://."""
    app = LettaError(Kind.UNREACHABLE, "ClientConnectorSSLError", base_url="wss://letta.internal:4500/ws")
    assert "with ws://" in app.for_operator("the connection") and "http://" not in app.for_operator("the connection")
    assert "start with ws://" in app.explain("alice")
    rest = LettaError(Kind.UNREACHABLE, "ClientConnectorSSLError", base_url="https://letta.internal")
    assert "with http://" in rest.for_operator("the health check") and "start with http://" in rest.explain("alice")
