"""A vote on a reply's step reaches Letta where the server takes it (0.16.8's PATCH /v1/steps/{id}/feedback, as
captured in reference/letta/0.16.8/steps-feedback-*.json), and nowhere else."""

from __future__ import annotations

import asyncio

import pytest

from bridge.letta.chooser import RunnerChooser
from bridge.letta.client import LettaClient
from bridge.letta.errors import LettaError
from bridge.letta.models import AssistantMessage
from bridge.letta.wire import user_message
from tests.fakes.letta import FakeLetta


async def _reply_step(client: LettaClient, agent_id: str) -> str:
    response = await client.send_agent(agent_id, user_message("hello", "otid-feedback-1", None))
    steps = [m.step_id for m in response.messages if isinstance(m, AssistantMessage)]
    assert steps and steps[0]
    return steps[0]


def test_a_vote_then_a_change_of_mind_reach_the_step(letta: FakeLetta) -> None:
    alice = letta.add_agent("alice")

    async def go() -> str:
        client = LettaClient(letta.base_url, retry_base=0.01)
        try:
            chooser = RunnerChooser(client, "auto")
            step = await _reply_step(client, alice)
            assert await chooser.step_feedback(step, "up")
            assert await chooser.step_feedback(step, "down")
            return step
        finally:
            await client.aclose()

    step = asyncio.run(go())
    assert letta.step_feedback == [(step, "positive"), (step, "negative")]


def test_an_unknown_step_is_an_error(letta: FakeLetta) -> None:
    async def go() -> None:
        client = LettaClient(letta.base_url, retry_base=0.01)
        try:
            with pytest.raises(LettaError) as raised:
                await client.step_feedback("step-00000000-0000-4000-8000-00000000abcd", "up")
            assert raised.value.status == 404
        finally:
            await client.aclose()

    asyncio.run(go())
    assert letta.step_feedback == []


def test_letta_0_11_is_not_sent_feedback() -> None:
    fake = FakeLetta(version="0.11.7")
    fake.start()
    try:
        alice = fake.add_agent("alice")

        async def go() -> bool:
            client = LettaClient(fake.base_url, retry_base=0.01)
            try:
                return await RunnerChooser(client, "auto").step_feedback(await _reply_step(client, alice), "up")
            finally:
                await client.aclose()

        assert asyncio.run(go()) is False
        assert not any("/v1/steps/" in r.path for r in fake.requests)
    finally:
        fake.stop()
