"""What the REST transport makes of Letta Cloud's refusals, against raw servers on 127.0.0.1: a conversation busy
with another run (409) waited out whatever words it comes in, a quota (402) or a long rate limit (429 with a long
Retry-After) said plainly at once instead of asked again in a loop.

None of these bodies is captured (Cloud cannot be reached from here): the 409 wordings and the 402 / 429 shapes are
the ones Letta Code itself recognises (letta-ai/letta-code src/agent/turn-recovery-policy.ts and its tests,
src/utils/conversation-busy-error.ts, src/cli/helpers/error-formatter.ts); Retry-After is plain HTTP (RFC 9110)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bridge.letta.client import LettaClient
from bridge.letta.errors import SERVER_WIDE, Kind, LettaError
from bridge.letta.models import AssistantMessage

REPLY = (b'data: {"id":"message-1","message_type":"assistant_message","otid":"o-80","content":"dora says hi",'
         b'"seq_id":2,"run_id":"run-1"}\n\ndata: {"message_type":"stop_reason","stop_reason":"end_turn"}\n\n'
         b"data: [DONE]\n\n")
MESSAGE = {"role": "user", "content": "hi", "otid": "o-1"}


async def _serve(answers: list[tuple[int, dict[str, str], bytes]], call: str) -> tuple[object, int]:
    """Each send (a POST) gets the next answer (the last one for ever); what `call` on the client ended in, and
    how many sends were made."""
    requests = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length")), 0)
        await reader.readexactly(length)
        if head.startswith(b"GET "):  # the look at active runs before a first send: none going
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                         b"Connection: close\r\n\r\n[]")
            await writer.drain()
            writer.close()
            return
        status, headers, body = answers[min(requests, len(answers) - 1)]
        requests += 1
        kind = b"text/event-stream" if status == 200 else b"application/json"
        extra = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers.items())
        writer.write(b"HTTP/1.1 %d X\r\nContent-Type: %s\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (status, kind, extra, len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    client = LettaClient(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", retry_base=0.01, busy_wait=5)
    try:
        if call == "stream":
            said = [m async for m in client.stream_conversation("conv-1", MESSAGE, background=True)]
            return said, requests
        await client.send_agent("agent-1", MESSAGE)
    except LettaError as error:
        return error, requests
    finally:
        await client.aclose()
        server.close()
    raise AssertionError("the send neither failed nor streamed")


@pytest.mark.parametrize("body", [
    {"error": "Conversation conv-1 is busy with another active run."},
    {"detail": "CONFLICT: Cannot send a new message: Another request (run_id=run-9) is currently being processed "
               "for this conversation. Please wait for it to complete."},
])
def test_a_conversation_busy_in_other_words_is_waited_out_then_sent_once(body: dict[str, str]) -> None:
    """Letta Code waits out a 409 whose words say the conversation is busy, with or without a `run_id` key (its
    TS core answers `{"error": "... is busy with another active run."}`). The bridge waited only when the body had a
    `run_id` key: any other busy 409 failed the turn at once ("busy with another request")."""
    busy = (409, {}, json.dumps(body).encode())
    said, requests = asyncio.run(_serve([busy, busy, (200, {}, REPLY)], "stream"))
    assert requests == 3, said
    assert isinstance(said, list) and [m.text for m in said if isinstance(m, AssistantMessage)] == ["dora says hi"]


def test_a_conversation_still_busy_after_the_wait_says_so_plainly() -> None:
    """After the wait the person reads what happened and what to do, not Letta's CONFLICT text alone."""
    error = LettaError(Kind.CONFLICT, "Conversation conv-1 is busy with another active run.", status=409)
    assert error.busy
    said = error.explain("dora")
    assert "still busy answering an earlier message" in said and "not sent" in said, said


@pytest.mark.parametrize("retry_after", ["3600", "in an hour"])
def test_a_rate_limit_with_a_long_retry_after_is_said_at_once_with_the_wait(retry_after: str) -> None:
    """A 429 asking for an hour (a quota that resets later) was sent again three times, 30 s apart, and then
    said "Ask again in a minute": the turn hung for a minute and a half and the advice was wrong. Retry-After may
    also be an HTTP date (RFC 9110 10.2.3), which was not read at all."""
    if retry_after == "in an hour":
        retry_after = format_datetime(datetime.now(UTC) + timedelta(hours=1, seconds=30), usegmt=True)
    limited = (429, {"Retry-After": retry_after}, b'{"error": "Rate limited", "reasons": ["exceeded-quota"]}')
    error, requests = asyncio.run(_serve([limited], "send"))
    assert isinstance(error, LettaError) and error.kind == Kind.RATE_LIMITED
    assert requests == 1
    said = error.explain("dora")
    assert "about 1 hour" in said and "exceeded-quota" in said and "in a minute" not in said, said


def test_a_short_retry_after_is_waited_then_sent_again() -> None:
    limited = (429, {"Retry-After": "0"}, b'{"detail": "Too many requests"}')
    error, requests = asyncio.run(_serve([limited], "send"))
    assert isinstance(error, LettaError) and requests == 4  # the send and its 3 retries


def test_a_quota_used_up_is_said_plainly_and_ends_a_group_turn() -> None:
    """Letta Cloud answers 402 when the account's plan limit or credits are used up. It was an "invalid request"
    ("Letta refused the request for dora"), and the next agents of a group turn were asked and refused the same."""
    quota = (402, {}, b'{"error": "You have reached your limit for messages", "reasons": ["not-enough-credits"]}')
    error, requests = asyncio.run(_serve([quota], "send"))
    assert isinstance(error, LettaError) and requests == 1
    assert error.kind in SERVER_WIDE
    said = error.explain("dora")
    assert "You have reached your limit for messages" in said and "plan" in said and "credits" in said, said
    assert "LETTA_API_KEY" not in said
    assert "credits" in error.for_operator("the send")


def test_letta_clouds_own_failures_do_not_send_people_to_logs_they_cannot_read() -> None:
    """On Letta Cloud a 500 said "check the Letta server's logs", and an unreachable Cloud "check that it is
    running": neither is anything a Cloud user can do."""
    failed = LettaError(Kind.SERVER_ERROR, "An unknown error occurred", status=500, base_url="https://api.letta.com")
    said = failed.explain("dora")
    assert "logs" not in said and "Letta Cloud" in said, said
    gone = LettaError(Kind.UNREACHABLE, "ClientConnectorError", base_url="https://api.letta.com").explain("dora")
    assert "running" not in gone and "Letta Cloud" in gone, gone
    own = LettaError(Kind.SERVER_ERROR, "boom", status=500, base_url="http://letta.internal:8283").explain("dora")
    assert "logs" in own, own


def test_an_agents_name_is_said_as_written_at_the_start_of_a_sentence() -> None:
    """str.capitalize turned ResearchBot into Researchbot in every sentence that starts with the agent's name."""
    busy = LettaError(Kind.CONFLICT, "busy", status=409)
    busy.run_id = "run-1"
    assert busy.explain("ResearchBot").startswith("ResearchBot was still busy"), busy.explain("ResearchBot")
    limited = LettaError(Kind.RATE_LIMITED, "slow down", status=429)
    limited.loop_ran = True  # the model provider's limit, said of the agent
    assert limited.explain("ResearchBot").startswith("ResearchBot's model provider"), limited.explain("ResearchBot")
