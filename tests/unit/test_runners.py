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


def test_a_group_turn_cut_short_and_resumed_numbers_its_replies_as_the_live_stream_did() -> None:
    """The outbox keys a reply by its step and index: recovered replies must be numbered one per message, as the
    stream numbered them. Before, the recovery joined each member's messages into one reply, so after a crash
    between alice's two messages and bob's answer, bob's reply took alice's second key and was never posted."""
    import asyncio

    from bridge.domain import AgentRef, Target, TurnInput
    from bridge.letta.bridge_runner import BridgeRunner
    from bridge.letta.client import LettaClient
    from bridge.letta.runners import ServerRunner
    from tests.fakes.letta import FakeLetta
    from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript

    with FakeLetta(version="0.11.7") as letta:
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        letta.set_reply(alice, ["alice one", "alice two"])  # two assistant messages in one step
        letta.set_delay(bob, 1.0)
        members = (AgentRef(alice, "alice"), AgentRef(bob, "bob"))
        target = Target("group", members, group_id=letta.add_group([alice, bob]))
        journal = MemoryJournal()
        outbox: dict[str, str] = {}  # source -> text; the same source twice is owed once, as in the store

        async def run(stop_after: int | None) -> None:
            client = LettaClient(letta.base_url)
            runner = ServerRunner(client, BridgeRunner(client), patience=5.0)
            try:
                async for event in runner.run(target, TurnInput("hi all", OTID, "maria"), NoTranscript(), journal):
                    if isinstance(event, AgentReply):
                        outbox.setdefault(f"reply:{event.step}:{event.index}", event.text)
                    if len(outbox) == stop_after:
                        return  # the process dies here, alice's two messages posted
            finally:
                await client.aclose()

        asyncio.run(run(stop_after=2))
        asyncio.run(run(stop_after=None))  # the next start
    assert list(outbox.values()) == ["alice one", "alice two", "bob says hi"]
