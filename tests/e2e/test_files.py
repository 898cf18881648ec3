"""Files shared with a mention (issue 19), end to end on each kind of server: an image reaches every agent asked as
an image part, a text file is described (inlined where the setting is on), and a file too big or not readable is
named in the thread while the text still goes."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import World, open_world
from tests.e2e.test_app_server import Rig, _rig
from tests.e2e.test_guarantees import rig as guarantee_rig
from tests.fakes.signing import event_body, mention_event

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")
PNG_B64 = base64.b64encode(PNG).decode()


@pytest.fixture(scope="module", params=["server", "bridge"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp(f"files-{request.param}")
    with open_world(str(request.param), tmp, FILE_MAX_BYTES="1000", FILE_INLINE_TEXT="true") as w:
        yield w


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    yield from _rig(tmp_path_factory.mktemp("files-app-server"))


def share(bridge: Any, channel: str, text: str, files: list[dict[str, Any]]) -> str:
    event = mention_event(text, channel=channel)
    event["files"] = files
    response = bridge.post(event_body(event))
    assert response.status_code == 200
    return str(event["ts"])


def wait_done(world: World, channel: str, ts: str) -> None:
    world.slack.wait_for(lambda: bool({"white_check_mark", "warning"} & world.slack.reactions(channel, ts)), 15)


def sent_contents(world: World, ids: list[str]) -> list[list[dict[str, Any]]]:
    return [r.body["messages"][0]["content"] for r in world.letta.sends() if world.letta.asked(r) in ids]


def test_an_image_reaches_every_agent_as_an_image_part(world: World) -> None:
    crew = world.bound_crew()
    ts = share(world.bridge, crew.channel, "what is in this?", [world.slack.add_file("dot.png", PNG, "image/png")])
    wait_done(world, crew.channel, ts)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}
    contents = sent_contents(world, [crew.group_id, *crew.agents.values()])
    assert contents and all(c[1:] == [image] for c in contents)
    assert all('"file": "dot.png"' in c[0]["text"] and c[0]["text"].endswith("what is in this?") for c in contents)
    fetched = [token for _, token in world.slack.file_fetches]
    assert fetched and set(fetched) == {world.slack.bot_token}
    texts = [p.args["text"] for p in world.slack.posts(crew.channel, ts)]
    assert len(texts) == 3 and not any("could not pass on" in t for t in texts)


def test_a_text_file_is_inlined_and_an_empty_mention_with_a_file_runs(world: World) -> None:
    crew = world.bound_crew(("alice",))
    notes = world.slack.add_file("notes.txt", b"ship ```the fix``` first", "text/plain", "text")
    ts = share(world.bridge, crew.channel, "", [notes])
    wait_done(world, crew.channel, ts)
    [content] = sent_contents(world, [crew.group_id, *crew.agents.values()])
    assert len(content) == 1
    assert '"status": "inlined below"' in content[0]["text"]
    assert "````\nship ```the fix``` first\n````" in content[0]["text"]


def test_a_file_too_big_or_unreadable_is_named_and_the_text_still_goes(world: World) -> None:
    crew = world.bound_crew(("alice",))
    big = world.slack.add_file("big.png", PNG * 40, "image/png")
    secret = world.slack.add_file("secret.png", PNG, "image/png", status=403)
    gone = world.slack.add_file("gone.png", PNG, "image/png")
    gone["url_private_download"] = gone["url_private_download"].replace(gone["id"], "F99999999")
    ts = share(world.bridge, crew.channel, "look at these", [big, secret, gone])
    wait_done(world, crew.channel, ts)
    [content] = sent_contents(world, [crew.group_id, *crew.agents.values()])
    assert len(content) == 1 and content[0]["text"].endswith("look at these")
    texts = [p.args["text"] for p in world.slack.posts(crew.channel, ts)]
    [note] = [t for t in texts if "could not pass on" in t]
    assert "big.png (it is too big: 3 KB, the limit is 1 KB)" in note
    assert "secret.png (the bot may not read it)" in note and "gone.png (Slack did not serve it)" in note
    assert any(t.endswith("says hi") for t in texts)


def test_a_file_the_token_may_not_read_gets_the_sign_in_page_and_is_named(world: World) -> None:
    crew = world.bound_crew(("alice",))
    theirs = world.slack.add_file("a.png", PNG, "image/png", token="xoxb-another-workspace")
    ts = share(world.bridge, crew.channel, "and this?", [theirs])
    wait_done(world, crew.channel, ts)
    [content] = sent_contents(world, [crew.group_id, *crew.agents.values()])
    assert len(content) == 1 and content[0]["text"].endswith("and this?")
    texts = [p.args["text"] for p in world.slack.posts(crew.channel, ts)]
    assert "I could not pass on a.png (the bot may not read it); the message went to the agents without it." in texts


def test_a_bridge_run_group_gives_each_member_the_image(world: World) -> None:
    if world.runner != "bridge":
        pytest.skip("the bridge runner plays the group on 0.16.8")
    crew = world.crew()
    world.slack.add_channel(crew.channel, f"chan-{crew.channel.lower()}")
    world.connect(crew.channel, crew.group_id, runner="bridge")
    ts = share(world.bridge, crew.channel, "rate it", [world.slack.add_file("dot.png", PNG, "image/png")])
    wait_done(world, crew.channel, ts)
    asked = [world.letta.asked(r) for r in world.letta.sends() if world.letta.asked(r) in crew.agents.values()]
    assert sorted(asked) == sorted(crew.agents.values())
    assert all(c[1]["source"]["data"] == PNG_B64 for c in sent_contents(world, list(crew.agents.values())))


def test_app_server_agents_get_the_image_and_a_broken_one_never_loses_the_text(rig: Rig) -> None:
    channel, ids = rig.bind(("alice", "ok"), ("bob", "ok"))
    good = rig.slack.add_file("dot.png", PNG, "image/png")
    ts = share(rig.bridge, channel, "see", [good])
    assert rig.done(channel, ts) == {"white_check_mark"}
    for agent in ids.values():
        [turn] = rig.inputs(agent)
        assert turn.text.endswith("see") and [p["source"]["data"] for p in turn.images] == [PNG_B64]
    frames = [f for f in rig.app.received if isinstance(f, dict) and f.get("type") == "input"]
    assert all(f["payload"].get("image_failure_mode") == "drop" for f in frames)
    said = [t for _, t in rig.said(channel, ts)]
    assert said == ["alice says hi", "bob says hi"]


def test_earlier_files_in_the_thread_are_described_never_fetched(world: World) -> None:
    crew = world.bound_crew(("alice",))
    root = world.slack.add_message(crew.channel, "a thread before the bot")
    report = world.slack.add_file("report.pdf", b"%PDF-1.4", "application/pdf", "pdf")
    world.slack.add_message(crew.channel, "the report", thread_ts=root, files=[report])
    before = len(world.slack.file_fetches)
    event = mention_event("what about it?", channel=crew.channel, thread_ts=root)
    assert world.bridge.post(event_body(event)).status_code == 200
    wait_done(world, crew.channel, str(event["ts"]))
    [content] = sent_contents(world, [crew.group_id, *crew.agents.values()])
    assert '"text": "the report", "files": [{"file": "report.pdf", "type": "application/pdf"' in content[0]["text"]
    assert len(world.slack.file_fetches) == before


def fetches(slack: Any, file: dict[str, Any]) -> int:
    return sum(1 for file_id, _ in slack.file_fetches if file_id == file["id"])


@pytest.mark.slow  # kill -9 and a restart: .ci/run's slow stage
def test_killed_while_the_first_agent_thinks_the_resumed_turn_sends_the_same_image_and_text(tmp_path: Path) -> None:
    """The prepared files are stored before the first send: after kill -9 the file is gone from Slack, yet the next
    agent gets the same image part and text as the first, nobody is asked twice and the file is fetched once."""
    r = guarantee_rig(tmp_path, "0.16.8", names=("alice", "bob"))
    try:
        r.letta.set_delay(r.agents["alice"], 9.0)  # long enough for a restart on a loaded machine
        dot = r.slack.add_file("dot.png", PNG, "image/png")
        ts = share(r.bridge, r.channel, "what is in this?", [dot])
        r.letta.wait_for(lambda: any(i.agent_name == "alice" for i in r.letta.inputs), 10)
        r.bridge.kill()
        del r.slack.served[dot["id"]]  # fetched again, it would now be missing
        r.bridge.restart()
        assert not all(i.finished for i in r.letta.inputs), "the bridge must be back before alice has answered"
        r.slack.wait_for(lambda: len(r.replies(ts)) == 2, 30)
        time.sleep(0.5)
        assert [r.turns_of(n) for n in ("alice", "bob")] == [1, 1]
        assert r.replies(ts) == ["alice", "bob"]
        sends = {r.letta.asked(s): s.body["messages"][0]["content"] for s in r.letta.sends()}
        alice, bob = sends[r.agents["alice"]], sends[r.agents["bob"]]
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}
        assert alice[1:] == bob[1:] == [image]
        assert '"file": "dot.png"' in alice[0]["text"] and bob[0]["text"].endswith(alice[0]["text"])
        assert fetches(r.slack, dot) == 1
        assert not any("could not pass on" in p.args["text"] for p in r.slack.posts(r.channel, ts))
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


@pytest.mark.slow
def test_app_server_killed_mid_turn_resumes_with_the_same_image_and_text(tmp_path: Path) -> None:
    for rig in _rig(tmp_path):
        channel, ids = rig.bind(("gus", "slow:2"), ("hal", "ok"))
        dot = rig.slack.add_file("dot.png", PNG, "image/png")
        ts = share(rig.bridge, channel, "what is in this?", [dot])
        rig.slack.wait_for(lambda: len(rig.inputs(ids["gus"])) == 1, 20)
        rig.bridge.kill()  # gus's model call is in flight: the socket closes under it
        del rig.slack.served[dot["id"]]
        rig.bridge.restart()
        assert rig.done(channel, ts, timeout=30)
        assert [len(rig.inputs(agent)) for agent in ids.values()] == [1, 1]  # nobody asked twice
        [gus], [hal] = rig.inputs(ids["gus"]), rig.inputs(ids["hal"])
        assert [p["source"]["data"] for p in gus.images] == [p["source"]["data"] for p in hal.images] == [PNG_B64]
        assert '"file": "dot.png"' in gus.text and hal.text.endswith(gus.text)
        assert fetches(rig.slack, dot) == 1
        assert not any("could not pass on" in text for _, text in rig.said(channel, ts))
