from __future__ import annotations

from bridge.domain import AgentReply
from bridge.letta.chooser import parse_version, runner_for_version
from bridge.letta.runners import UNSEEN_HEADER, compose


def test_compose_labels_each_unseen_reply_then_the_users_message() -> None:
    text = compose([AgentReply("alice", "first"), AgentReply("bob", "second")], "[maria in #agents on Slack] go")
    lines = '{"agent": "alice", "text": "first"}\n{"agent": "bob", "text": "second"}'
    assert text == f"{UNSEEN_HEADER}\n{lines}\n\n[maria in #agents on Slack] go"
    assert compose([], "just me") == "just me"


def test_auto_uses_the_server_runner_only_below_0_12() -> None:
    assert runner_for_version("0.11.7") == "server"
    assert runner_for_version("0.11.0") == "server"
    for version in ("0.12.0", "0.12.1", "0.16.4", "0.16.8", "1.0.0", "cloud"):
        assert runner_for_version(version) == "bridge"
    assert parse_version("v0.11") == (0, 11, 0)
    assert parse_version("cloud") is None


def test_the_speaker_name_sent_to_letta_is_what_llm_providers_accept() -> None:
    from bridge.letta.wire import speaker_name, user_message

    assert speaker_name("maria") == "maria"
    assert speaker_name("María José (ops)") == "Mar_a_Jos_ops"
    assert speaker_name("🙂") is None and speaker_name("") is None
    assert len(speaker_name("x" * 100) or "") == 64
    assert "name" not in user_message("hi", "otid-1", "🙂")
    assert user_message("hi", "otid-1", "a b")["name"] == "a_b"
