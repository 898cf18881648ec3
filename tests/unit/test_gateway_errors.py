"""A gateway in front of Letta (Cloudflare for Letta Cloud, Envoy, a load balancer) answering an error of its own:
only an answer that proves the send never reached Letta is sent again; any other is looked up by its otid in
history first (Letta does not deduplicate: a second send is a second turn)."""

from __future__ import annotations

import asyncio

import pytest

from bridge.domain import AgentFailure, AgentRef, AgentReply, Target, TurnEvent, TurnInput
from bridge.letta import gateways
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from bridge.letta.runners import ServerRunner
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript

SEND = r"/v1/(agents/[^/]+/messages(/stream)?|conversations/[^/]+/messages)"
CLOUDFLARE = {"server": "cloudflare", "cf-ray": "8f1d2c3b4a5e6f70-AMS", "content-type": "text/html; charset=UTF-8"}
PLAIN = {"content-type": "text/plain"}
ENVOY_RESET = b"upstream connect error or disconnect/reset before headers. reset reason: connection termination"
ENVOY_TIMEOUT = b"upstream request timeout"


def page(status: int, title: str) -> bytes:
    """The shape of Cloudflare's 52x error pages: a whole HTML document naming the error and the Ray ID."""
    return (
        f"<!DOCTYPE html><html lang=\"en-US\"><head><title>letta.example | {status}: {title}</title></head>"
        f"<body><h1>{title}</h1><span>Error code {status}</span><p>Cloudflare Ray ID: 8f1d2c3b4a5e6f70</p>"
        "</body></html>"
    ).encode()


def turn(letta: FakeLetta) -> tuple[str, list[TurnEvent]]:
    alice = letta.add_agent("alice")
    target = Target("agents", (AgentRef(alice, "alice"),))

    async def go() -> list[TurnEvent]:
        client = LettaClient(letta.base_url, retry_base=0.01, send_retries=2)
        try:
            runner = BridgeRunner(client, patience=1.0)
            journal = MemoryJournal()
            return [e async for e in runner.run(target, TurnInput("hi all", OTID, "maria"), NoTranscript(), journal)]
        finally:
            await client.aclose()

    return alice, asyncio.run(asyncio.wait_for(go(), 20))


def said(events: list[TurnEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, AgentReply)]


@pytest.mark.parametrize("redis", [False, True], ids=["no-redis", "redis"])
@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (503, ENVOY_RESET, PLAIN),
        (503, ENVOY_TIMEOUT, PLAIN),
        (503, b"<html><body><h1>503 Service Unavailable</h1></body></html>", {"content-type": "text/html"}),
        (524, page(524, "A timeout occurred"), CLOUDFLARE),
        (520, page(520, "Web server is returning an unknown error"), CLOUDFLARE),
    ],
    ids=["envoy-reset", "envoy-timeout", "plain-503", "cloudflare-524", "cloudflare-520"],
)
def test_a_gateway_error_after_letta_ran_the_send_gets_the_stored_reply_and_no_second_send(
    status: int, body: bytes, headers: dict[str, str], redis: bool
) -> None:
    """The gateway forwarded the send, Letta ran it and stored the reply, and the gateway answered an error of its
    own. A 503 was taken for 'never sent' and sent again (the agent asked twice); a 520 or 524 was said in the
    thread as a failure, and the reply the agent gave was never shown."""
    with FakeLetta(version="0.16.8", redis=redis) as letta:
        letta.gateway_next("POST", SEND, status, body, headers)
        alice, events = turn(letta)
        assert len([i for i in letta.inputs if i.agent_id == alice]) == 1, "the agent was asked twice"
        assert said(events) == ["alice says hi"], events


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (522, page(522, "Connection timed out"), CLOUDFLARE),
        (521, page(521, "Web server is down"), CLOUDFLARE),
        (503, b"no healthy upstream", PLAIN),
        (503, b"upstream connect error or disconnect/reset before headers. reset reason: connection failure, "
              b"transport failure reason: delayed connect error: 111", PLAIN),
    ],
    ids=["cloudflare-522", "cloudflare-521", "envoy-no-upstream", "envoy-connect-failure"],
)
def test_a_gateway_error_that_proves_the_send_never_reached_letta_is_sent_again(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    """Cloudflare could not connect to the origin (521, 522), or Envoy had no upstream to send to: nothing ran, so
    the send is made again (a 52x was said in the thread as Letta failing while the agent answered)."""
    with FakeLetta(version="0.16.8") as letta:
        letta.fail_next("POST", SEND, status, raw=body, headers=headers)
        alice, events = turn(letta)
        assert said(events) == ["alice says hi"], events
        assert len([i for i in letta.inputs if i.agent_id == alice]) == 1


def test_a_cloudflare_timeout_with_nothing_in_history_is_said_plainly_and_not_sent_again() -> None:
    """A 524 whose send Letta never stored (its run failed, say): not sent again, and the thread is told in words,
    never Cloudflare's HTML page."""
    with FakeLetta(version="0.16.8") as letta:
        letta.fail_next("POST", SEND, 524, raw=page(524, "A timeout occurred"), headers=CLOUDFLARE)
        _, events = turn(letta)
        assert len(letta.sends()) == 1, "sent again"
        failures = [e for e in events if isinstance(e, AgentFailure)]
        assert len(failures) == 1 and not said(events), events
        message = failures[0].message
        assert "Cloudflare" in message and "<" not in message, message


def test_a_cloudflare_status_without_cloudflares_headers_proves_nothing() -> None:
    """A 522 from anything but Cloudflare (no `server: cloudflare`, no `cf-ray`) is not taken as 'never sent'."""
    with FakeLetta(version="0.16.8") as letta:
        letta.fail_next("POST", SEND, 522, raw=b"<html>522</html>", headers={"content-type": "text/html"})
        _, events = turn(letta)
        assert len(letta.sends()) == 1 and not said(events), events


def test_a_group_send_a_gateway_answered_503_after_forwarding_is_read_from_the_members_not_sent_again() -> None:
    """0.11.7 runs the group itself: a 503 after the gateway forwarded the group send was sent again, and every
    member answered twice."""
    with FakeLetta(version="0.11.7") as letta:
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        target = Target("group", (AgentRef(alice, "alice"), AgentRef(bob, "bob")),
                        group_id=letta.add_group([alice, bob]))
        letta.gateway_next("POST", r"/v1/groups/[^/]+/messages(/stream)?", 503, ENVOY_RESET, PLAIN)

        async def go() -> list[TurnEvent]:
            client = LettaClient(letta.base_url, retry_base=0.01, send_retries=2)
            try:
                runner = ServerRunner(client, BridgeRunner(client), patience=2.0)
                turn = TurnInput("hi all", OTID, "maria")
                return [e async for e in runner.run(target, turn, NoTranscript(), MemoryJournal())]
            finally:
                await client.aclose()

        events = asyncio.run(asyncio.wait_for(go(), 20))
        assert sorted(i.agent_name for i in letta.inputs) == ["alice", "bob"], "a member was asked twice"
        assert said(events) == ["alice says hi", "bob says hi"], events


RESET = "upstream connect error or disconnect/reset before headers. "


@pytest.mark.parametrize(
    ("status", "headers", "body", "unsent"),
    [
        (503, PLAIN, RESET + "reset reason: overflow", True),  # Envoy's circuit breaker: never sent on
        (503, PLAIN, RESET + "reset reason: connection timeout", True),
        (503, PLAIN, RESET + "retried and the latest reset reason: remote connection failure", False),
        (503, PLAIN, RESET + "reset reason: remote reset", False),
        (503, PLAIN, RESET + "reset reason: connection_termination", False),
        (523, CLOUDFLARE, "", True),
        (524, {"server": "cloudflare"}, "", None),  # no cf-ray: not Cloudflare's own page
        (524, {"cf-ray": "8f1d-AMS", "server": "nginx"}, "", None),
        (503, {"content-type": "text/html"}, "<html><title>503 Service Unavailable</title></html>", None),
    ],
)
def test_what_a_gateways_answer_proves(status: int, headers: dict[str, str], body: str, unsent: bool | None) -> None:
    """Only a connect that failed, with no attempt before it, proves a send stayed in the gateway; a retried one's
    earlier attempt may have been forwarded."""
    answer = gateways.read(status, headers, body)
    assert (answer.unsent if answer is not None else None) is unsent
