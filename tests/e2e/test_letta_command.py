"""/letta end to end: signed slash commands and menu actions through the running bridge, answers on the
response_url, notices in the channel, bindings in the store; bad input changes nothing."""

from __future__ import annotations

import itertools
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import World
from tests.e2e.harness import SIGNING_SECRET, run_cli
from tests.e2e.slash import (
    ADMIN,
    FORM,
    LISTED,
    MEMBER,
    OWNER,
    TEAM,
    Slash,
    agents_state,
    button,
    group_choice,
    slash_world,
)
from tests.fakes import letta_refusals as R
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import command_body, event_body, next_ts, signed_headers
from tests.unit.test_gateway_errors import CLOUDFLARE, page

MISSING_GROUP = "group-00000000-0000-4000-8000-000000000000"
MISSING_AGENT = "agent-00000000-0000-4000-8000-000000000000"
_channels = itertools.count(1)


def channel() -> str:
    return f"C{next(_channels):04d}SLASH"


@pytest.fixture(scope="module")
def sw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slash]:
    with slash_world(tmp_path_factory.mktemp("slash"), SLACK_CONFIGURE_USERS=LISTED) as world:
        yield world


def crew(sw: Slash, names: tuple[str, ...] = ("alice", "bob"), description: str = "Research crew") -> tuple[
    str, list[str]
]:
    agents = [sw.letta.add_agent(n) for n in names]
    return sw.letta.add_group(agents, manager_type="round_robin", description=description), agents


def test_help_and_unknown_words_are_answered_in_the_ack_without_letta(sw: Slash) -> None:
    before = len(sw.letta.requests)
    for text in ("", "help", "frobnicate"):
        answer = sw.send(text, channel(), user=MEMBER)
        assert answer.ack.status_code == 200
        assert "/letta connect group-&lt;uuid&gt;" in answer.ack.text
    assert "`frobnicate`" in sw.send("frobnicate", channel()).ack.text
    assert len(sw.letta.requests) == before


def test_a_command_from_a_channel_named_payloads_is_answered(sw: Slash) -> None:
    """Bolt reads a form body in which the word "payload" appears as an interactivity payload: before, /letta in
    #payloads, or with "payload" in its text, was answered 404 "unhandled request" and Slack showed its own error."""
    for channel_name, text in (("payloads", "help"), ("agents", "payload")):
        body = command_body(text, channel_id=channel(), user_id=MEMBER, team_id=TEAM, channel_name=channel_name,
                            response_url=sw.slack.response_url())
        ack = sw.bridge.post(body, content_type=FORM)
        assert ack.status_code == 200 and "/letta connect group-&lt;uuid&gt;" in ack.text, (ack.status_code, ack.text)


def test_connect_a_group_answers_saves_announces_and_mentions_reach_it(sw: Slash) -> None:
    group, (alice, bob) = crew(sw)
    ch = channel()
    text = sw.ask(f"connect {group}", ch)
    assert "Connected this channel to *Research crew*" in text and group in text
    assert "Pattern: `round_robin`" in text and f"alice (`{alice}`), bob (`{bob}`)" in text
    assert "Runner: `auto` (now `bridge` on Letta 0.16.8)" in text
    assert sw.binding(ch) == ("group", group, ADMIN)
    assert sw.notices(ch) == [f"<@{ADMIN}> connected this channel to Research crew: alice, bob"]
    event, _ = sw.bridge.mention("hello crew", ch)
    sw.slack.wait_for(lambda: len(sw.slack.posts(ch, event["ts"])) == 2)
    assert [p.args["username"] for p in sw.slack.posts(ch, event["ts"])] == ["alice", "bob"]


def test_connect_agents_in_order_and_rebinding_says_what_it_replaced(sw: Slash) -> None:
    group, _ = crew(sw, description="Old crew")
    carol, dave = sw.letta.add_agent("carol"), sw.letta.add_agent("dave")
    ch = channel()
    sw.ask(f"connect {group}", ch)
    text = sw.ask(f"connect `{dave}`, `{carol}`", ch)
    assert "Connected this channel to a list of agents" in text and "This replaces *Old crew*" in text
    assert text.index("dave") < text.index("carol")
    kind, ids, _ = sw.binding(ch) or ("", "", "")
    assert kind == "agents" and ids.index(dave) < ids.index(carol)
    assert sw.notices(ch)[-1] == f"<@{ADMIN}> connected this channel to agents: dave, carol"


@pytest.mark.parametrize(
    ("ids", "words"),
    [
        ("group-nope", "is not a group id"),
        ("alice", "is not an agent id"),
        (MISSING_GROUP, "was not found on the Letta server"),
        (MISSING_AGENT, "was not found on the Letta server"),
    ],
)
def test_bad_ids_change_nothing(sw: Slash, ids: str, words: str) -> None:
    group, _ = crew(sw)
    ch = channel()
    sw.ask(f"connect {group}", ch)
    text = sw.ask(f"connect {ids}", ch)
    assert words in text and text.endswith("Nothing was changed.") and "Traceback" not in text
    # The id as typed: a sentence's capital made `group-nope` "Group-nope" and `alice` "Alice".
    if not ids.startswith(("group-0", "agent-0")):
        assert text.startswith(f"`{ids}` is not "), text
    assert sw.binding(ch) == ("group", group, ADMIN), "the old binding must survive a failed rebind"
    assert len(sw.notices(ch)) == 1


def test_group_without_agents_rejected_key_and_letta_errors_change_nothing(sw: Slash) -> None:
    empty = sw.letta.add_group([], description="Empty")
    group, _ = crew(sw)
    ch = channel()
    assert "has no agents" in sw.ask(f"connect {empty}", ch)
    sw.letta.fail_next("GET", rf"/v1/groups/{group}", 401, {"detail": "Unauthorized"})
    assert "rejected the bridge's API key" in sw.ask(f"connect {group}", ch)
    sw.letta.fail_next("GET", rf"/v1/groups/{group}", 500)
    assert "HTTP 500" in sw.ask(f"connect {group}", ch)
    assert sw.binding(ch) is None and sw.notices(ch) == []


def test_the_ack_comes_at_once_even_when_letta_is_slow(sw: Slash) -> None:
    group, _ = crew(sw)
    shape = httpx.get(f"{sw.letta.base_url}/v1/groups/{group}").json()
    sw.letta.fail_next("GET", rf"/v1/groups/{group}", 200, body=shape, delay=3.5)
    ch = channel()
    answer = sw.send(f"connect {group}", ch)
    assert answer.ack.status_code == 200 and answer.seconds < 2.5 and answer.posts() == []
    assert "Connected this channel" in answer.text
    assert sw.binding(ch) is not None


def test_disconnect_keeps_history_and_status_shows_who_when_and_liveness(sw: Slash) -> None:
    group, _ = crew(sw)
    ch = channel()
    sw.ask(f"connect {group}", ch)
    assert "Disconnected this channel from *Research crew*" in sw.ask("disconnect", ch, user=OWNER)
    assert sw.binding(ch) is None
    assert sw.notices(ch)[-1] == f"<@{OWNER}> disconnected this channel from Research crew: alice, bob"
    assert "was not connected" in sw.ask("disconnect", ch)
    sw.ask(f"connect {group}", ch, user=LISTED)
    status = sw.ask("status", ch, user=MEMBER)
    assert f"connected to *Research crew* (`{group}`), pattern `round_robin`: alice, bob" in status
    assert f"Set by <@{LISTED}> on" in status and "Runner: `auto` (now `bridge`)" in status
    assert ":white_check_mark: Letta 0.16.8" in status
    # Letta's records were found; whether the agents' models answer, only a turn tells (a status said "answers").
    assert ":white_check_mark: Letta has the group, with 2 agents" in status and "answers, with" not in status
    history = [line for line in status.splitlines() if line.startswith("• ")]
    assert [h.split(": ", 1)[1].split(" `")[0] for h in history] == [
        f"<@{LISTED}> connected to", f"<@{OWNER}> disconnected from", f"<@{ADMIN}> connected to"
    ]
    sw.letta.fail_next("GET", rf"/v1/groups/{group}", 404, {"detail": f"Group not found with id='{group}'"})
    gone = sw.ask("status", ch)
    assert ":warning: Letta no longer knows" in gone
    assert "someone who may configure this channel can connect it again with `/letta connect`" in gone
    assert "is not connected to Letta" in sw.ask("status", channel())
    _, (alice, bob) = crew(sw)
    listed = channel()
    sw.ask(f"connect {alice} {bob}", listed)
    assert ":white_check_mark: Letta has every agent" in sw.ask("status", listed, user=MEMBER)


def test_status_names_a_bridge_run_groups_manager_that_letta_no_longer_knows(sw: Slash) -> None:
    """The manager is asked first at every turn, so without it every mention fails: status must not say all is
    well (it looked at the workers only)."""
    _, (alice, bob) = crew(sw)
    boss, ch = sw.letta.add_agent("boss"), channel()
    assert "Connected" in sw.ask(f"connect {alice} {bob} pattern=supervisor manager={boss}", ch)
    assert ":white_check_mark: Letta has every agent" in sw.ask("status", ch)
    sw.letta.fail_next("GET", rf"/v1/agents/{boss}$", 404, R.agent_not_found(sw.letta.version, boss))
    status = sw.ask("status", ch)
    assert ":warning: Letta no longer knows boss:" in status and "every agent" not in status, status


def test_a_failed_lookup_is_said_as_a_lookup_not_as_a_message_an_agent_was_answering(sw: Slash) -> None:
    """connect and agents only read Letta: their failures must not say an agent was answering, that a message may
    have reached Letta, or that an agent was kept from being asked twice (a send's words)."""
    alice, ch = sw.letta.add_agent("alice"), channel()
    said = []
    sw.letta.fail_next("GET", rf"/v1/agents/{alice}/?", 500, {"detail": "database is locked"})
    said.append(sw.ask(f"connect {alice}", ch))
    sw.letta.fail_next("GET", rf"/v1/agents/{alice}/?", 524, raw=page(524, "A timeout occurred"), headers=CLOUDFLARE)
    said.append(sw.ask(f"connect {alice}", ch))
    sw.letta.fail_next("GET", r"/v1/agents/?", 500, {"detail": "Internal Server Error"})
    said.append(sw.ask("agents", ch))
    for text in said:
        assert not any(w in text for w in ("was answering", "The message to", "asked twice")), text
    assert f"Letta failed to answer the bridge's request for agent {alice} (HTTP 500: database is locked)" in said[0]
    assert f"No answer came from Letta to the bridge's request for agent {alice}" in said[1]
    assert "Letta failed to answer the bridge's request for the agent list (HTTP 500" in said[2]
    assert "Nothing was changed" in said[0] and "Nothing was changed" not in said[2]  # `agents` changes nothing
    assert "is not connected" in sw.ask("status", ch)  # nothing was saved


def test_a_pattern_used_wrongly_is_said_before_letta_is_asked(sw: Slash) -> None:
    """`pattern=supervisor` with no manager looked every agent up first: with Letta failing, the admin was told
    about Letta and fixed the wrong thing."""
    alice, bob = sw.letta.add_agent("alice"), sw.letta.add_agent("bob")
    # Only these two agents' lookups fail (any left over touches no other test of the module).
    sw.letta.fail_next("GET", rf"/v1/agents/({alice}|{bob})/?", 500, {"detail": "database is locked"}, times=2)
    said = sw.ask(f"connect {alice} {bob} pattern=supervisor", channel())
    assert "A supervisor group needs a manager" in said and "HTTP 500" not in said, said


def test_a_channels_changes_take_effect_in_the_order_they_were_made(sw: Slash) -> None:
    """`connect bob` (Letta slow to confirm bob) then `disconnect`: the disconnect finished first and the connect
    saved after it, so the channel ended connected though the last command was disconnect."""
    alice, bob, ch = sw.letta.add_agent("alice"), sw.letta.add_agent("bob"), channel()
    assert "Connected" in sw.ask(f"connect {alice}", ch)
    record = httpx.get(f"{sw.letta.base_url}/v1/agents/{bob}").json()
    sw.letta.fail_next("GET", rf"/v1/agents/{bob}/?", 200, record, delay=1.5)  # Letta answers, slowly
    connect = sw.send(f"connect {bob}", ch)
    time.sleep(0.3)
    disconnect = sw.send("disconnect", ch)
    assert "Connected this channel to a list of agents" in connect.text, connect.text
    assert "Disconnected this channel from a list of agents: bob" in disconnect.text, disconnect.text
    assert sw.binding(ch) is None
    assert [n.split(" ", 1)[1] for n in sw.notices(ch)] == [
        "connected this channel to agents: alice", "connected this channel to agents: bob",
        "disconnected this channel from agents: bob",
    ], sw.notices(ch)


def test_connecting_a_channel_to_what_it_has_already_changes_nothing(sw: Slash) -> None:
    """A Connect pressed twice posted the channel's notice twice, added a second history entry and answered
    "This replaces" the very same agents."""
    alice, bob, ch = sw.letta.add_agent("alice"), sw.letta.add_agent("bob"), channel()
    first = sw.choose(ch, button("letta_connect_agents"), state=agents_state(alice, bob))
    second = sw.choose(ch, button("letta_connect_agents"), state=agents_state(alice, bob))
    assert "Connected this channel to a list of agents" in first.wait()["text"]
    said = second.wait()["text"]
    assert said.startswith("This channel was connected to this already, so nothing changed: a list of agents"), said
    assert "This replaces" not in said
    assert len(sw.notices(ch)) == 1, sw.notices(ch)
    history = [line for line in sw.ask("status", ch).splitlines() if line.startswith("• ")]
    assert len(history) == 1, history
    assert "This replaces a list of agents: alice" in sw.ask(f"connect {alice}", ch)  # a change is still one


def test_a_notice_the_channel_refused_is_explained_for_what_was_done(sw: Slash) -> None:
    """The bot not in the channel: a connect is told to invite it, by the name Slack shows for it; a disconnect
    was told the same ("or I won't hear mentions"), which no longer mattered."""
    alice, ch = sw.letta.add_agent("alice"), channel()
    sw.slack.fail_next("chat.postMessage", "not_in_channel")
    said = sw.ask(f"connect {alice}", ch)
    assert "invite me first (`/invite <@U0BOTABCD>`), or I won't hear mentions" in said, said
    sw.slack.fail_next("chat.postMessage", "not_in_channel")
    said = sw.ask("disconnect", ch)
    assert "I could not announce it in the channel, since I am not in it." in said and "invite" not in said, said


def test_groups_and_agents_list_what_the_server_has(sw: Slash) -> None:
    group, (alice, _) = crew(sw, description="Listed crew")
    groups = sw.ask("groups", channel(), user=ADMIN)
    assert f"*Listed crew* `{group}`, pattern `round_robin`: alice, bob" in groups
    agents = sw.ask("agents", channel(), user=ADMIN)
    assert f"*alice* `{alice}`" in agents
    # Members who may not configure see names only (SLACK_CATALOG=names, the default).
    groups = sw.ask("groups", channel(), user=MEMBER)
    assert "pattern `round_robin`: alice, bob" in groups and group not in groups and "Listed crew" not in groups
    agents = sw.ask("agents", channel(), user=MEMBER)
    assert "*alice*" in agents and alice not in agents
    paged = [r for r in sw.letta.requests if r.path in ("/v1/groups/", "/v1/agents/")]
    assert paged and all(r.query.get("limit") == "100" for r in paged)


def test_the_menu_lists_groups_and_a_choice_binds_and_replaces_the_menu(sw: Slash) -> None:
    group, _ = crew(sw, description="Menu crew")
    ch = channel()
    menu = sw.send("connect", ch).wait()
    select = menu["blocks"][1]["elements"][0]
    assert select["type"] == "static_select" and select["action_id"] == "letta_connect_group"
    option = next(o for o in select["options"] if o["value"] == group)
    assert option["text"]["text"] == "Menu crew" and option["description"]["text"] == "round_robin: alice, bob"
    chosen = sw.choose(ch, group_choice(group))
    assert chosen.ack.status_code == 200 and chosen.ack.text == ""
    post = chosen.wait()
    assert post["replace_original"] is True and "Connected this channel to *Menu crew*" in post["text"]
    assert sw.binding(ch) == ("group", group, ADMIN)
    assert sw.notices(ch) == [f"<@{ADMIN}> connected this channel to Menu crew: alice, bob"]
    cancel = sw.choose(ch, button("letta_cancel")).wait()
    assert cancel["delete_original"] is True


def test_without_group_routes_the_menu_offers_agents_and_connect_binds_them_in_order(sw: Slash) -> None:
    erin, fred = sw.letta.add_agent("erin"), sw.letta.add_agent("fred")
    sw.letta.fail_next("GET", r"/v1/groups/", 404, {"detail": "Not Found"})
    ch = channel()
    menu = sw.send("connect", ch).wait()
    kinds = [e["type"] for b in menu["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert kinds == ["multi_static_select", "static_select", "static_select", "static_select", "button", "button"]
    assert "no group routes" in menu["blocks"][0]["text"]["text"]
    assert "Pick at least one agent" in sw.choose(ch, button("letta_connect_agents")).text
    post = sw.choose(ch, button("letta_connect_agents"), state=agents_state(fred, erin)).wait()
    assert post["replace_original"] is True and "a list of agents" in post["text"]
    stored = f'[{{"id": "{fred}", "name": "fred"}}, {{"id": "{erin}", "name": "erin"}}]'
    assert sw.binding(ch) == ("agents", stored, ADMIN)


def test_members_may_read_but_not_change_and_are_told_who_may(sw: Slash) -> None:
    group, _ = crew(sw)
    ch = channel()
    for text in (f"connect {group}", "connect", "disconnect"):
        refused = sw.ask(text, ch, user=MEMBER)
        assert refused.startswith(f"Only workspace admins and owners and <@{LISTED}> may change")
    assert "Only" in sw.choose(ch, group_choice(group), user=MEMBER).text
    assert sw.binding(ch) is None and sw.notices(ch) == []
    assert "not connected" in sw.ask("status", ch, user=MEMBER)
    for user in (ADMIN, OWNER, LISTED):
        assert "Connected this channel" in sw.ask(f"connect {group}", ch, user=user)


def test_another_workspace_is_refused_and_cannot_touch_this_ones_channels(sw: Slash) -> None:
    group, _ = crew(sw)
    ch = channel()
    before = len(sw.letta.requests)
    for text in (f"connect {group}", "status", "disconnect"):
        answer = sw.send(text, ch, team="T0OTHER01")
        assert answer.ack.status_code == 200 and "serves another Slack workspace" in answer.ack.text
    assert "another Slack workspace" in sw.choose(ch, group_choice(group), team="T0OTHER01").text
    assert len(sw.letta.requests) == before and sw.binding(ch, team="T0OTHER01") is None
    # The CLI will not bind a channel of a workspace this bridge does not serve...
    assert run_cli(sw.env, "channels", "connect", ch, group, "--team", "T0OTHER01").returncode == 2
    # ...and the same channel id bound in another workspace (a database an OAuth bridge used) is invisible here.
    with sqlite3.connect(sw.db) as db:
        db.execute(
            "INSERT INTO bindings (team_id, channel_id, kind, group_id, agents, bound_by, bound_at)"
            " VALUES ('T0OTHER01', ?, 'group', ?, '[]', 'cli', '2026-12-06T10:00:00+00:00')",
            (ch, group),
        )
    assert "not connected" in sw.ask("status", ch)
    assert "was not connected" in sw.ask("disconnect", ch)
    assert sw.binding(ch, team="T0OTHER01") == ("group", group, "cli") and sw.binding(ch, TEAM) is None


def test_a_bad_signature_is_refused(sw: Slash) -> None:
    group, _ = crew(sw)
    ch = channel()
    body = command_body(f"connect {group}", channel_id=ch, user_id=ADMIN)
    wrong = httpx.post(f"{sw.bridge.url}/slack/events", content=body, headers=signed_headers("nope", body, FORM))
    assert wrong.status_code == 401
    stale = signed_headers(SIGNING_SECRET, body, FORM, timestamp=1_000_000_000)
    assert httpx.post(f"{sw.bridge.url}/slack/events", content=body, headers=stale).status_code == 401
    assert sw.binding(ch) is None


def test_creator_mode_lets_the_channels_creator_configure(tmp_path: Path) -> None:
    from tests.e2e.slash import CREATOR

    with slash_world(tmp_path, SLACK_CONFIGURE_BY="creator") as world:
        group, _ = crew(world)
        world.slack.add_channel("C0CREATED", "made-by-cree", creator=CREATOR)
        refused = world.ask(f"connect {group}", "C0CREATED", user=MEMBER)
        assert refused.startswith("Only the channel's creator and workspace admins and owners may change")
        assert "Connected" in world.ask(f"connect {group}", "C0CREATED", user=CREATOR)
        assert "Connected" in world.ask(f"connect {group}", "C0CREATED", user=ADMIN)
        assert world.binding("C0CREATED") == ("group", group, ADMIN)


def test_everyone_mode_and_a_renamed_command(tmp_path: Path) -> None:
    with slash_world(tmp_path, SLACK_CONFIGURE_BY="everyone", SLACK_COMMAND="/crew") as world:
        group, _ = crew(world)
        answer = world.send(f"connect {group}", "C0EVERY01", user=MEMBER, command="/crew")
        assert "Connected" in answer.text and world.binding("C0EVERY01") == ("group", group, MEMBER)
        # Everyone is every member, not a guest: a customer in a shared channel could rebind or unbind it.
        for guest, kind in (("U0GUEST01", "multi"), ("U0GUEST02", "single")):
            world.slack.add_user(guest, f"guest-{kind}", guest=kind)
            for text in ("disconnect", f"connect {group}"):
                refused = world.send(text, "C0EVERY01", user=guest, command="/crew").text
                assert refused.startswith("Only members of this workspace (not guests) may change"), refused
        assert world.binding("C0EVERY01") == ("group", group, MEMBER)
        assert "`/crew status`" in world.send("help", "C0EVERY01", command="/crew").ack.text
        assert world.send("status", "C0EVERY01", command="/letta").ack.status_code == 404


def test_letta_unreachable_is_said_plainly(tmp_path: Path) -> None:
    with slash_world(tmp_path) as world:
        group, _ = crew(world)
        world.env["LETTA_BASE_URL"] = "http://127.0.0.1:9"
        world.bridge.stop()
        world.bridge = type(world.bridge)(world.env).start(tmp_path / "down.log")
        for text in (f"connect {group}", "groups", "connect"):
            answer = world.ask(text, "C0DOWN001")
            assert "couldn't reach the Letta server at http://127.0.0.1:9" in answer and "Traceback" not in answer
        assert ":warning: I couldn't reach the Letta server" in world.ask("status", "C0DOWN001")
        assert world.binding("C0DOWN001") is None


def test_a_mention_in_a_newly_bound_channel_reaches_the_new_group(world: World) -> None:
    world.slack.add_user(ADMIN, "ada", display_name="ada", is_admin=True)
    db = Path(world.env["DATABASE_URL"].removeprefix("sqlite:///"))
    sw = Slash(world.slack, world.letta, world.bridge, world.env, db)
    first, second = world.crew(("alice", "bob")), world.crew(("xena",), description="Second crew")
    ch = first.channel
    sw.ask(f"connect {first.group_id}", ch)
    event, _ = world.bridge.mention("who is there?", ch)
    world.slack.wait_for(lambda: len(world.slack.posts(ch, event["ts"])) == 2)
    assert "This replaces *Research crew*" in sw.ask(f"connect {second.group_id}", ch)
    event, _ = world.bridge.mention("and now?", ch)
    world.slack.wait_for(lambda: len(world.slack.posts(ch, event["ts"])) == 1)
    assert [p.args["username"] for p in world.slack.posts(ch, event["ts"])] == ["xena"]
    last = world.letta.sends()[-1]
    expected = second.group_id if world.runner == "server" else second.agents["xena"]
    assert world.letta.asked(last) == expected


def direct_message(text: str, channel: str = "D0123ABCD") -> dict[str, Any]:
    return {"type": "message", "channel": channel, "user": "U0123ABCD", "text": text, "ts": next_ts(),
            "channel_type": "im", "event_ts": "", "team": TEAM}


@pytest.mark.parametrize("in_channels", [False, True])
def test_dms_and_if_wanted_unbound_channels_go_to_the_default_target(tmp_path: Path, in_channels: bool) -> None:
    default = f"group-{uuid.uuid4()}"
    settings = {"DEFAULT_TARGET": default, "DEFAULT_TARGET_IN_CHANNELS": str(in_channels).lower()}
    with slash_world(tmp_path, **settings) as world:
        dora = world.letta.add_agent("dora")
        world.letta.add_group([dora], group_id=default, description="Default crew")
        dm = direct_message("hello in private")
        assert world.bridge.post(event_body(dm)).status_code == 200
        world.slack.wait_for(lambda: len(world.slack.posts("D0123ABCD", dm["ts"])) == 1)
        assert world.slack.posts("D0123ABCD", dm["ts"])[0].args["username"] == "dora"
        event, _ = world.bridge.mention("anyone?", "C0UNBOUND")
        world.slack.wait_for(lambda: len(world.slack.posts("C0UNBOUND", event["ts"])) == 1)
        [reply] = world.slack.posts("C0UNBOUND", event["ts"])
        status = world.ask("status", "C0UNBOUND")
        if in_channels:
            assert reply.args["username"] == "dora" and f"default target `{default}`" in status
        else:
            assert "not connected" in reply.args["text"] and "/letta connect" in reply.args["text"]
            assert "default target" not in status
        assert world.binding("C0UNBOUND") is None and world.binding("D0123ABCD") is None


def test_a_dm_whose_default_target_cannot_be_used_is_told_so_not_to_connect_the_channel(tmp_path: Path) -> None:
    """A DM while DEFAULT_TARGET could not be looked up (its agent deleted, Letta down) was answered "This
    channel is not connected to a Letta group yet. Connect it with `/letta connect`...": advice nobody in a DM
    can follow, hiding why nothing answered."""
    gone = f"agent-{uuid.uuid4()}"
    with slash_world(tmp_path, DEFAULT_TARGET=gone) as world:
        dm = direct_message("hello in private")
        assert world.bridge.post(event_body(dm)).status_code == 200
        world.slack.wait_for(lambda: len(world.slack.posts("D0123ABCD", dm["ts"])) == 1, timeout=15)
        text = world.slack.posts("D0123ABCD", dm["ts"])[0].args["text"]
        assert "not connected" not in text and "connect" not in text, text
        assert "default Letta target" in text and gone in text and "was not found" in text, text


def test_without_a_default_target_dms_are_ignored(sw: Slash) -> None:
    before = len(sw.letta.requests)
    dm = direct_message("hello?", channel="D0456EFGH")
    assert sw.bridge.post(event_body(dm)).status_code == 200
    time.sleep(0.3)
    assert sw.slack.posts("D0456EFGH") == [] and len(sw.letta.requests) == before


def test_a_refusal_says_when_slack_would_not_say_who_you_are(tmp_path: Path) -> None:
    """A failed lookup grants nothing, but an admin told "only admins may" (users.info refused: a missing scope),
    or a private channel's creator told "only the creator may" (conversations.info answers channel_not_found
    until the bot is in it) was left with a refusal that made no sense."""
    from tests.e2e.slash import CREATOR

    with slash_world(tmp_path, SLACK_CONFIGURE_BY="creator") as world:
        group, _ = crew(world)
        world.slack.fail_next("users.info", "missing_scope")
        refused = world.ask(f"connect {group}", "C0SCOPE01")
        assert refused.startswith("Only the channel's creator and workspace admins and owners may change")
        assert "Slack would not tell me about your account (`missing_scope`)" in refused, refused
        assert "python -m bridge check" in refused
        refused = world.ask(f"connect {group}", "C0PRIVATE", user=CREATOR)  # private, the bot not in it yet
        assert "Slack would not tell me who created this channel (`channel_not_found`)" in refused, refused
        assert "invite me first (`/invite <@U0BOTABCD>`)" in refused
        plain = world.ask(f"connect {group}", "C0PRIVATE", user=MEMBER)
        assert "would not tell me" in plain  # the same for anyone: the bridge cannot know who created it
        world.slack.add_channel("C0PRIVATE", "secret", creator=CREATOR, is_private=True)
        assert "Connected" in world.ask(f"connect {group}", "C0PRIVATE", user=CREATOR)
        world.slack.add_channel("C0OTHERS1", "theirs", creator=CREATOR)
        refused = world.ask(f"connect {group}", "C0OTHERS1", user=MEMBER)
        assert "would not tell me" not in refused and refused.startswith("Only the channel's creator")
        assert world.binding("C0SCOPE01") is None and world.binding("C0OTHERS1") is None


def test_connect_in_a_dm_without_a_default_target_is_refused_not_saved_to_be_ignored(sw: Slash) -> None:
    """Without DEFAULT_TARGET direct messages are ignored, so a DM's binding would never be used: /letta connect
    in a DM said "Connected ... Mention me here" and then nothing ever answered there."""
    group, _ = crew(sw)
    text = sw.ask(f"connect {group}", "D0DMCONN1")
    assert "A direct message cannot be connected" in text and "DEFAULT_TARGET" in text, text
    assert text.endswith("Nothing was changed.")
    assert sw.binding("D0DMCONN1") is None and sw.notices("D0DMCONN1") == []
    status = sw.ask("status", "D0DMCONN1")  # it said "`/letta connect` connects it", which is refused here
    assert "I answer direct messages only when the operator sets DEFAULT_TARGET" in status, status
    assert "connect` connects it" not in status


def test_status_says_the_binding_when_letta_never_answers(tmp_path: Path) -> None:
    """Status is what one runs when the agents are silent: against a Letta that takes the connection and never
    answers, it said only "did not answer within 60 seconds" after a minute, not even what the channel is bound
    to. Its probes wait LETTA_LOOKUP_TIMEOUT; the binding and its history come from the store regardless."""
    with slash_world(tmp_path, LETTA_LOOKUP_TIMEOUT="1") as world:
        group, _ = crew(world)
        world.ask(f"connect {group}", "C0HANGS01")
        assert isinstance(world.letta, FakeLetta)
        world.letta.hang_next("GET", r"/v1/health/?")
        answer = world.send("status", "C0HANGS01")
        status = answer.text
        assert "This channel is connected to *Research crew*" in status, status
        assert ":warning: The Letta server at" in status and "did not answer within 1 second" in status, status
        world.letta.hang_next("GET", rf"/v1/groups/{group}/?")
        status = world.ask("status", "C0HANGS01")
        assert ":white_check_mark: Letta" in status and ":warning: The Letta server at" in status, status
