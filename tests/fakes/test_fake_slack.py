"""Self-tests for the fake Slack: drive it with the real slack_sdk/Bolt clients so bridge tests can trust it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from .signing import (
    action_body,
    command_body,
    event_body,
    mention_event,
    signed_headers,
    slack_json,
    slack_signature,
)
from .slack import DEFAULT_SCOPES, FakeSlack
from .slack_reference import CAPTURES_DIR

pytestmark = pytest.mark.timeout(60)

CHANNEL = "C0123ABCD"


def _ref_json(rel: str) -> Any:
    return json.loads((CAPTURES_DIR / rel).read_text("utf-8"))


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    """A started fake per test, so recorded calls never leak between tests."""
    slack = FakeSlack()
    slack.start()
    try:
        yield slack
    finally:
        slack.stop()


def _client(fake: FakeSlack, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, **kwargs)


# ---------------------------------------------------------------------------- signing helpers


def test_signature_worked_examples_from_http_md() -> None:
    """The three vectors in http.md (A: command + JSON, B: Slack's documented example)."""
    secret_a = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    command = (CAPTURES_DIR / "commands" / "slash_letta_connect.txt").read_bytes()
    assert len(command) == 443
    assert (
        slack_signature(secret_a, "1764064800", command)
        == "v0=8182e1cace440961c48f049220ca8f2f14940a35d6d89abda0c5d5e611cbe13a"
    )
    challenge = slack_json(_ref_json("events/url_verification.json"))
    assert challenge == (
        b'{"token":"vErIfIcAtIoNtOkEn0123456","challenge":'
        b'"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}'
    )
    assert (
        slack_signature(secret_a, "1764064800", challenge)
        == "v0=b4249a5c54467997d78377e1e47f5fb9ad9dd0bc609e01a0fed9675162eeb204"
    )
    body_b = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert (
        slack_signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body_b)
        == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_signed_headers_pass_slack_sdk_verifier() -> None:
    """Bolt uses slack_sdk's verifier, so our headers must satisfy it (and fail on a tampered body)."""
    secret = "s3cr3t"
    body = event_body(mention_event("hi"))
    headers = signed_headers(secret, body, "application/json", retry_num=2)
    verifier = SignatureVerifier(secret)
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b" ", headers)
    assert headers["x-slack-retry-num"] == "2" and headers["x-slack-retry-reason"] == "http_timeout"
    old = signed_headers(secret, body, "application/json", timestamp=1764064800)
    assert old["x-slack-request-timestamp"] == "1764064800"
    assert not verifier.is_valid_request(body, old)  # outside the 5-minute window


def test_command_and_action_bodies_match_fixtures_byte_for_byte() -> None:
    command = command_body("connect agent-7f3c2a10-1b2c-4d5e-8f90-a1b2c3d4e5f6")
    assert command == (CAPTURES_DIR / "commands" / "slash_letta_connect.txt").read_bytes()
    payload = _ref_json("interactivity/block_actions_static_select.json")
    expected = (CAPTURES_DIR / "interactivity" / "block_actions_static_select.txt").read_bytes()
    assert action_body(payload) == expected


def test_mention_event_and_envelope_match_fixture() -> None:
    fixture = _ref_json("events/app_mention.json")
    event = mention_event("what changed in the last deploy? <prod> & staging", ts="1764064800.123456")
    assert list(event) == list(fixture["event"])
    assert event["text"] == fixture["event"]["text"]
    assert event["blocks"][0]["elements"] == fixture["event"]["blocks"][0]["elements"]
    envelope = json.loads(event_body(event, event_id="Ev0A1B2C3D4E"))
    assert envelope == {**fixture, "event": event}
    threaded = mention_event("and?", user="U0456EFGH", thread_ts="1764064800.123456", parent_user_id="U0123ABCD")
    assert list(threaded) == list(_ref_json("events/app_mention_in_thread.json")["event"])
    a, b = mention_event("x"), mention_event("x")
    assert Decimal(a["ts"]) < Decimal(b["ts"])
    assert json.loads(event_body(a))["event_id"] != json.loads(event_body(a))["event_id"]


# ---------------------------------------------------------------------------- Web API


def test_auth_test_fields_scopes_and_invalid_token(fake: FakeSlack) -> None:
    async def run() -> None:
        resp = await _client(fake).auth_test()
        assert (resp["user_id"], resp["bot_id"], resp["team_id"]) == ("U0BOTABCD", "B0123ABCD", "T0123ABCD")
        assert resp.headers["x-oauth-scopes"] == DEFAULT_SCOPES
        with pytest.raises(SlackApiError) as err:
            await AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url).auth_test()
        assert err.value.response["error"] == "invalid_auth"

    asyncio.run(run())
    assert [c.token for c in fake.calls_to("auth.test")] == ["xoxb-test-token", "xoxb-wrong"]


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
def test_post_message_records_thread_username_and_serves_replies(fake: FakeSlack) -> None:
    root = fake.add_message(CHANNEL, "<@U0BOTABCD> what changed?", user="U0123ABCD")

    async def run() -> None:
        client = _client(fake)
        named = await client.chat_postMessage(
            channel=CHANNEL, thread_ts=root, text="On it", username="support-agent (Letta)", icon_emoji=":robot_face:"
        )
        plain = await client.chat_postMessage(channel=CHANNEL, thread_ts=root, text="plain")
        msg = named["message"]
        assert msg["subtype"] == "bot_message" and msg["username"] == "support-agent (Letta)"
        assert "user" not in msg and msg["bot_id"] == "B0123ABCD" and msg["icons"]["emoji"] == ":robot_face:"
        assert msg["thread_ts"] == root and msg["parent_user_id"] == "U0123ABCD"
        assert plain["message"]["user"] == "U0BOTABCD" and plain["message"]["bot_profile"]["id"] == "B0123ABCD"
        assert Decimal(root) < Decimal(named["ts"]) < Decimal(plain["ts"])
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel=CHANNEL, text="")
        assert err.value.response["error"] == "no_text"
        replies = await client.conversations_replies(channel=CHANNEL, ts=root)
        assert [m["ts"] for m in replies["messages"]] == [root, named["ts"], plain["ts"]]
        edited = await client.chat_update(channel=CHANNEL, ts=plain["ts"], text="edited")
        assert edited["message"]["text"] == "edited" and "edited" in edited["message"]
        with pytest.raises(SlackApiError) as err:
            await client.chat_update(channel=CHANNEL, ts=root, text="not mine")
        assert err.value.response["error"] == "cant_update_message"

    asyncio.run(run())
    posts = fake.posts(channel=CHANNEL, thread_ts=root)
    assert [p.args["text"] for p in posts] == ["On it", "plain"]
    assert posts[0].args["username"] == "support-agent (Letta)" and posts[0].token == fake.bot_token
    assert posts[0].headers["content-type"].startswith("application/json")
    assert len(fake.posts()) == 2 and fake.posts(thread_ts="1.2") == []
    assert fake.messages(CHANNEL, thread_ts=root)[-1]["text"] == "edited"


def test_reactions_use_query_string_and_document_errors(fake: FakeSlack) -> None:
    ts = "1764064800.123456"

    async def run() -> None:
        client = _client(fake)
        await client.reactions_add(channel=CHANNEL, timestamp=ts, name="eyes")
        with pytest.raises(SlackApiError) as err:
            await client.reactions_add(channel=CHANNEL, timestamp=ts, name="eyes")
        assert err.value.response["error"] == "already_reacted"
        assert fake.reactions(CHANNEL, ts) == {"eyes"}
        await client.reactions_remove(channel=CHANNEL, timestamp=ts, name="eyes")
        with pytest.raises(SlackApiError) as err:
            await client.reactions_remove(channel=CHANNEL, timestamp=ts, name="eyes")
        assert err.value.response["error"] == "no_reaction"

    asyncio.run(run())
    first = fake.calls_to("reactions.add")[0]
    assert first.http_method == "POST" and first.ok
    assert first.query == {"channel": CHANNEL, "timestamp": ts, "name": "eyes"} == first.args
    assert fake.reactions(CHANNEL, ts) == set()


def test_users_info_and_conversations_info(fake: FakeSlack) -> None:
    fake.add_user("U0999ZZZZ", "carol", display_name="Caro", real_name="Carol Example", is_admin=True)
    fake.add_channel("C0777NEWC", "secret-room", creator="U0999ZZZZ", is_private=True)

    async def run() -> None:
        client = _client(fake)
        carol = (await client.users_info(user="U0999ZZZZ"))["user"]
        assert carol["profile"]["display_name"] == "Caro" and carol["real_name"] == "Carol Example"
        assert carol["is_admin"] and not carol["is_owner"] and not carol["is_bot"]
        assert (await client.users_info(user="U0123ABCD"))["user"]["name"] == "alice"  # reference user
        with pytest.raises(SlackApiError) as err:
            await client.users_info(user="U0NOBODY0")
        assert err.value.response["error"] == "user_not_found"
        room = (await client.conversations_info(channel="C0777NEWC"))["channel"]
        assert (room["name"], room["is_private"], room["creator"]) == ("secret-room", True, "U0999ZZZZ")
        with pytest.raises(SlackApiError) as err:
            await client.conversations_info(channel="C0NOPE000")
        assert err.value.response["error"] == "channel_not_found"

    asyncio.run(run())
    assert fake.calls_to("users.info")[0].http_method == "GET"


def test_rate_limit_injection_and_retry_handler(fake: FakeSlack) -> None:
    async def run() -> None:
        fake.fail_next("chat.postMessage", status=429, headers={"retry-after": "1"}, error="ratelimited")
        with pytest.raises(SlackApiError) as err:
            await _client(fake).chat_postMessage(channel=CHANNEL, text="hi")
        assert err.value.response.status_code == 429
        assert err.value.response.headers["retry-after"] == "1"
        assert err.value.response["error"] == "ratelimited"
        fake.fail_next("chat.postMessage", status=429, headers={"retry-after": "1"}, error="ratelimited")
        retrying = _client(fake, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
        assert (await retrying.chat_postMessage(channel=CHANNEL, text="after retry"))["ok"]
        fake.fail_next("chat.postMessage", error="not_in_channel", times=2)
        for _ in range(2):
            with pytest.raises(SlackApiError) as err:
                await _client(fake).chat_postMessage(channel=CHANNEL, text="x")
            assert err.value.response.status_code == 200 and err.value.response["error"] == "not_in_channel"
        assert (await _client(fake).chat_postMessage(channel=CHANNEL, text="x"))["ok"]

    asyncio.run(run())
    calls = fake.calls_to("chat.postMessage")
    assert [c.status for c in calls] == [429, 429, 200, 200, 200, 200]
    assert calls[2].at - calls[1].at >= 1.0  # the handler honoured retry-after
    assert [p.args["text"] for p in fake.posts()] == ["after retry", "x"]


def test_token_revoked_unknown_method_and_token_types(fake: FakeSlack) -> None:
    async def run() -> None:
        client = _client(fake)
        fake.set_token_revoked()
        for call in (client.auth_test(), client.users_info(user="U0123ABCD")):
            with pytest.raises(SlackApiError) as err:
                await call
            assert err.value.response["error"] == "token_revoked"
        fake.set_token_revoked(False)
        assert (await client.auth_test())["ok"]
        with pytest.raises(SlackApiError) as err:
            await client.api_call("files.frobnicate")
        assert err.value.response["error"] == "unknown_method"
        with pytest.raises(SlackApiError) as err:
            await client.apps_connections_open(app_token=fake.bot_token)
        assert err.value.response["error"] == "not_allowed_token_type"
        opened = await client.apps_connections_open(app_token=fake.app_token)
        assert opened["url"] == fake.api_url.replace("http://", "ws://").replace("/api/", "/ws")

    asyncio.run(run())


def test_response_url_records_posts_and_expires_after_five_uses(fake: FakeSlack) -> None:
    url = fake.response_url()
    assert url.startswith(fake.base_url + "response/") and fake.response_url() != url

    async def run() -> list[int]:
        hook = AsyncWebhookClient(url)
        statuses = []
        for i in range(6):
            resp = await hook.send(text=f"reply {i}", response_type="ephemeral", replace_original=False)
            statuses.append(resp.status_code)
            if resp.status_code == 200:
                assert resp.body == "ok"
        return statuses

    assert asyncio.run(run()) == [200] * 5 + [404]
    assert len(fake.response_posts) == 5
    assert fake.response_posts[0] == {
        "text": "reply 0",
        "response_type": "ephemeral",
        "replace_original": False,
        "_url": url,
    }


def test_streaming_and_assistant_status(fake: FakeSlack) -> None:
    root = fake.add_message(CHANNEL, "<@U0BOTABCD> stream please")

    async def run() -> None:
        client = _client(fake)
        await client.assistant_threads_setStatus(channel_id=CHANNEL, thread_ts=root, status="is thinking...")
        with pytest.raises(SlackApiError) as err:
            await client.chat_startStream(channel=CHANNEL, thread_ts=root)
        assert err.value.response["error"] == "missing_recipient_user_id"
        streamer = await client.chat_stream(
            channel=CHANNEL,
            thread_ts=root,
            recipient_team_id="T0123ABCD",
            recipient_user_id="U0123ABCD",
            buffer_size=5,
        )
        await streamer.append(markdown_text="Hello ")
        await streamer.append(markdown_text="world")
        done = await streamer.stop()
        assert done["message"]["text"] == "Hello world" and done["message"]["bot_id"] == "B0123ABCD"
        with pytest.raises(SlackApiError) as err:
            await client.chat_appendStream(channel=CHANNEL, ts=done["ts"], markdown_text="late")
        assert err.value.response["error"] == "message_not_in_streaming_state"

    asyncio.run(run())
    assert fake.calls_to("assistant.threads.setStatus")[0].args["status"] == "is thinking..."
    assert [c.method for c in fake.calls if c.ok and "Stream" in c.method] == [
        "chat.startStream",
        "chat.appendStream",
        "chat.stopStream",
    ]
    assert fake.messages(CHANNEL, thread_ts=root)[-1]["text"] == "Hello world"


def test_bolt_async_app_authorizes_and_replies_through_fake(fake: FakeSlack) -> None:
    """Bolt calls auth.test first and adds team_id to every call; the fake must accept both."""
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.request.async_request import AsyncBoltRequest

    secret = "bolt-secret"
    event = mention_event("ping & <stuff>")

    async def run() -> int:
        app = AsyncApp(client=_client(fake), signing_secret=secret, process_before_response=True)

        @app.event("app_mention")
        async def on_mention(event: dict[str, Any], say: Any) -> None:
            await say(text="pong", thread_ts=event.get("thread_ts") or event["ts"])

        body = event_body(event)
        headers: dict[str, Any] = dict(signed_headers(secret, body, "application/json"))
        request = AsyncBoltRequest(body=body.decode(), headers=headers)
        return (await app.async_dispatch(request)).status

    assert asyncio.run(run()) == 200
    fake.wait_for(lambda: len(fake.posts(thread_ts=event["ts"])) == 1)
    post = fake.posts(thread_ts=event["ts"])[0]
    assert post.args["text"] == "pong" and post.args["team_id"] == "T0123ABCD"
    assert fake.calls_to("auth.test")


def test_wait_for_times_out_with_context(fake: FakeSlack) -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0\.05s"):
        fake.wait_for(lambda: bool(fake.posts()), timeout=0.05)


# ---------------------------------------------------------------------------- Socket Mode


def test_socket_mode_round_trip(fake: FakeSlack) -> None:
    """slack_sdk's aiohttp SocketModeClient: apps.connections.open -> hello -> envelope -> ack."""
    payload = json.loads(event_body(mention_event("over the socket")))

    async def run() -> tuple[str, SocketModeRequest, list[dict[str, Any]]]:
        web = _client(fake)
        client = SocketModeClient(app_token=fake.app_token, web_client=web, ping_interval=1)
        received: asyncio.Queue[SocketModeRequest] = asyncio.Queue()
        raw: list[dict[str, Any]] = []

        async def on_message(_client: Any, message: dict[str, Any], _raw: str | None) -> None:
            raw.append(message)

        async def on_request(sm_client: Any, req: SocketModeRequest) -> None:
            await sm_client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            await received.put(req)

        client.message_listeners.append(on_message)
        client.socket_mode_request_listeners.append(on_request)
        try:
            await client.connect()  # type: ignore[no-untyped-call]
            for _ in range(500):
                if fake.socket_connected():
                    break
                await asyncio.sleep(0.01)
            envelope_id = await asyncio.to_thread(fake.send_socket_event, payload)
            req = await asyncio.wait_for(received.get(), timeout=5)
            await asyncio.sleep(1.5)  # let a ping/pong cycle run: the session must stay healthy
            assert await client.is_connected()
        finally:
            await client.close()  # type: ignore[no-untyped-call]
        return envelope_id, req, raw

    envelope_id, req, raw = asyncio.run(run())
    assert raw[0]["type"] == "hello" and raw[0]["connection_info"] == {"app_id": "A0123ABCD"}
    assert req.type == "events_api" and req.envelope_id == envelope_id and req.payload == payload
    fake.wait_for(lambda: any(a.get("envelope_id") == envelope_id for a in fake.socket_acks))
    assert fake.calls_to("apps.connections.open")[0].token == fake.app_token
    assert fake.socket_sent[0]["accepts_response_payload"] is False
    event = payload["event"]
    assert [m["text"] for m in fake.messages(CHANNEL, thread_ts=event["ts"])] == [event["text"]]  # remembered
    fake.wait_for(lambda: not fake.socket_connected())


def test_a_file_is_served_to_the_bot_token_only() -> None:
    """reference/slack/files.md: a missing or wrong token gets the sign-in page (HTML, 200), not the bytes."""
    import httpx

    with FakeSlack() as slack:
        file = slack.add_file("a.png", b"\x89PNG\r\n\x1a\nxx", "image/png")
        url, bot = file["url_private_download"], {"Authorization": f"Bearer {slack.bot_token}"}
        ok = httpx.get(url, headers=bot)
        assert ok.status_code == 200 and ok.content == b"\x89PNG\r\n\x1a\nxx"
        assert ok.headers["content-type"] == "image/png"
        for headers in ({}, {"Authorization": "Bearer xoxb-wrong"}):
            page = httpx.get(url, headers=headers)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert httpx.get(url.replace(file["id"], "F0"), headers=bot).status_code == 404
