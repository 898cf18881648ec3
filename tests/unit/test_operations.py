from __future__ import annotations

import asyncio
import io
import json
import logging
import time

import pytest

from bridge.checks_database import EPHEMERAL_HOSTS, ephemeral_sqlite
from bridge.clients import letta_client
from bridge.config import Settings
from bridge.logs import ContextFilter, JsonFormatter, Redactor, TextFormatter, Throttled, log_context
from bridge.metrics import Metrics, route


def capture(formatter: logging.Formatter, secrets: list[str]) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.addFilter(Redactor(secrets))
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test.{id(out)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


def test_json_lines_carry_context_and_extra_fields_with_secrets_masked() -> None:
    logger, out = capture(JsonFormatter(), ["s3cret-value"])
    with log_context(turn_id=7, binding="T1:C1"):
        logger.info("turn ended turn_id=%s", 7, extra={"status": "done", "duration_ms": 12.5, "note": "s3cret-value"})
    logger.info("outside xoxb-1234-abcd")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "turn ended turn_id=7"
    assert (first["turn_id"], first["binding"], first["status"], first["duration_ms"]) == (7, "T1:C1", "done", 12.5)
    assert first["note"] == "[redacted]"
    assert "turn_id" not in second and second["message"] == "outside [redacted]"


def test_text_lines_add_fields_the_message_does_not_already_say() -> None:
    logger, out = capture(TextFormatter(), [])
    with log_context(turn_id=3, channel="C1"):
        logger.info("turn finished turn_id=%s", 3)
    line = out.getvalue().strip()
    assert line.endswith("turn finished turn_id=3 channel=C1")


def test_letta_routes_lose_their_ids_and_each_app_has_its_own_registry() -> None:
    assert route("/v1/agents/agent-0a4b52f1-1111-4222-8333-444455556666/messages") == "/v1/agents/{agent}/messages"
    assert route("/v1/groups/group-0a4b52f1-1111-4222-8333-444455556666?limit=5") == "/v1/groups/{group}"
    assert route("/v1/conversations/conv-0a4b52f1-1111-4222-8333-444455556666/messages") == (
        "/v1/conversations/{conv}/messages"
    )
    one, two = Metrics(), Metrics()
    one.event(duplicate=True)
    assert b"bridge_events_duplicate_total 1.0" in one.expose()
    assert b"bridge_events_duplicate_total 0.0" in two.expose()


@pytest.mark.parametrize("variable", [host[0] for host in EPHEMERAL_HOSTS])
def test_sqlite_on_every_known_ephemeral_host_is_a_warning(variable: str) -> None:
    [check] = ephemeral_sqlite({variable: "1"})
    assert check.ok and check.warning and check.line().startswith("warn database storage: SQLite on")
    assert "PostgreSQL" in check.detail and "DATABASE_URL" in check.detail
    # The step by step is docs/paas.md; README's section is "Deploying", and only links to it.
    assert check.detail.endswith("see docs/paas.md."), check.detail


def test_no_warning_on_an_ordinary_host() -> None:
    assert ephemeral_sqlite({"HOME": "/root"}) == []


@pytest.mark.parametrize(
    "token",
    [
        "xoxe-1-My0xLTIxMjM0NTY3ODkwLWFiY2RlZg",  # a rotating bot token's refresh token (OAuth mode keeps them)
        "xoxe.xoxb-1-MS0yLTIxMjM0NTY3ODkw",  # a rotating bot token
        "xoxc-2123456789-abcdef",  # a browser client's token
        "xoxb-2123456789-abcdef",
    ],
)
def test_every_slack_token_shape_is_masked_even_when_it_is_not_the_bridges(token: str) -> None:
    logger, out = capture(TextFormatter(), [])
    logger.warning("slack said something about token=%s", token)
    line = out.getvalue()
    assert token.split("-", 1)[1] not in line, line


def test_a_letta_cloud_key_is_masked_even_when_it_is_not_the_bridges() -> None:
    """In OAuth mode each workspace's Letta key is typed into `/letta setup` after the logs were set up with the
    configured secrets: none of those keys was known to the redactor. Letta Cloud's keys have a shape of their own
    (`sk-let-…`, the shape Letta Code redacts: letta-code src/agent/memory-git.ts)."""
    key = "sk-let-MzY0ZWI1YjQtOGQ0Ni00NzYyLWE3ZTQtN2I4ZjI1YjE5ZjQ1OmFiY2RlZg=="
    logger, out = capture(TextFormatter(), [])
    logger.warning("a view submission said api_key=%s", key)
    line = out.getvalue()
    assert "MzY0ZWI1" not in line and "[redacted]" in line, line


def test_a_throttled_warning_says_how_many_went_unsaid_since_its_last_line() -> None:
    logger, out = capture(JsonFormatter(), [])
    refused = Throttled(logger, every=0.2)
    for _ in range(5):
        refused.warning("missing signature", "slack request refused reason=%s", "missing signature")
    refused.warning("replayed", "slack request refused reason=%s", "replayed request")  # its own key
    time.sleep(0.25)
    refused.warning("missing signature", "slack request refused reason=%s", "missing signature")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["message"][-9:], line.get("more_since_last_line")) for line in lines] == [
        ("signature", None), ("d request", None), ("signature", 4)
    ]


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_a_field_that_is_not_a_string_is_masked_too(formatter: logging.Formatter) -> None:
    """A field given as an object (an exception, a dict of headers, a settings object) was written through
    str() after the masking, which read only strings: its secret reached the line."""
    logger, out = capture(formatter, ["s3cret-value"])
    logger.warning("call failed", extra={"headers": {"Authorization": "Bearer s3cret-value"},
                                         "cause": ValueError("token s3cret-value refused"), "attempt": 2})
    line = out.getvalue()
    assert "s3cret-value" not in line and line.count("[redacted]") == 2 and "2" in line, line


def test_a_letta_key_first_used_after_logging_was_set_up_is_masked() -> None:
    """OAuth mode: each workspace may set its own Letta server and key (/letta setup), long after the masking
    was set up from the environment's settings: the key reached any line that quoted it (an error body a server
    or its gateway echoed). Every Letta client made with a key now has it masked."""
    logger, out = capture(TextFormatter(), [])
    settings = Settings(letta_base_url="http://letta.example:8283", letta_api_key="workspace-own-key-8121")
    asyncio.run(letta_client(settings).aclose())
    logger.warning("letta error detail='bad key workspace-own-key-8121'")
    assert "workspace-own-key-8121" not in out.getvalue(), out.getvalue()
