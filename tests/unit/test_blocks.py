from __future__ import annotations

from datetime import UTC, datetime

from bridge.configure import Connected, Probe, Status
from bridge.domain import AgentInfo, AgentRef, Binding, Catalog, HistoryEntry, Target
from bridge.letta.chooser import RunnerUse
from bridge.slack import blocks

G = "group-2a295a94-fb48-4739-8bc1-a06c1a881e2b"
ALICE = AgentRef("agent-00000000-0000-4000-8000-00000000000a", "alice")
BOB = AgentRef("agent-00000000-0000-4000-8000-00000000000b", "bob")
CREW = Target("group", (ALICE, BOB), G, "round_robin", "Research <crew> & co")
AT = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


def binding(target: Target = CREW, by: str = "U0123ABCD") -> Binding:
    return Binding("T0123ABCD", "C0123ABCD", target, "auto", by, AT)


def test_connected_names_description_pattern_agents_runner_and_what_it_replaced() -> None:
    old = Target("agents", (BOB,))
    text = blocks.connected(Connected(binding(), RunnerUse("auto", "bridge", "on Letta 0.16.8"), binding(old))).text
    assert "Research &lt;crew&gt; &amp; co" in text and G in text and "`round_robin`" in text
    assert f"alice (`{ALICE.id}`), bob (`{BOB.id}`)" in text
    assert "Runner: `auto` (now `bridge` on Letta 0.16.8), the bridge asks each agent in turn" in text
    assert "This replaces a list of agents: bob." in text


def test_a_bridge_defined_group_shows_its_pattern_manager_and_limits() -> None:
    boss = AgentRef("agent-00000000-0000-4000-8000-0000000000cc", "<boss>")
    crew = Target("agents", (ALICE, BOB), manager_type="dynamic", manager=boss, max_turns=4, termination_token="DONE!")
    text = blocks.connected(Connected(binding(crew), RunnerUse("auto", "bridge", ""), None)).text
    assert f"Pattern: `dynamic`, manager &lt;boss&gt; (`{boss.id}`), max turns 4, termination token DONE!" in text
    st = Status(binding(crew), [], Probe(True, "up"), None, "bridge", None)
    assert "a list of agents, pattern `dynamic`, manager &lt;boss&gt;" in blocks.status(st, "/letta").text
    plain = blocks.status(Status(binding(Target("agents", (ALICE,))), [], Probe(True, "up"), None, None, None), "/l")
    assert "a list of agents: alice." in plain.text


def test_notices_mention_the_actor_and_escape_letta_text() -> None:
    assert blocks.connect_notice("U0123ABCD", CREW) == (
        "<@U0123ABCD> connected this channel to Research &lt;crew&gt; &amp; co: alice, bob"
    )
    assert blocks.disconnect_notice("U1", binding()).startswith("<@U1> disconnected this channel from Research")
    hostile = Target("group", (AgentRef("agent-x", "<!channel>"),), G, "round_robin", "@here now")
    notice = blocks.connect_notice("U1", hostile)
    assert "<!channel>" not in notice and "@here" not in notice


def test_status_shows_binding_setter_probes_and_history() -> None:
    history = [HistoryEntry("disconnect", G, "auto", "U0456EFGH", AT), HistoryEntry("connect", G, "auto", "cli", AT)]
    st = Status(binding(), history, Probe(True, "Letta 0.16.8 answers"), Probe(False, "group gone"), "bridge", None)
    text = blocks.status(st, "/letta").text
    assert "connected to *Research &lt;crew&gt; &amp; co*" in text and "pattern `round_robin`" in text
    assert "Set by <@U0123ABCD> on 2026-01-02 03:04 UTC" in text and "(now `bridge`)" in text
    assert ":white_check_mark: Letta 0.16.8 answers" in text and ":warning: group gone" in text
    assert "<@U0456EFGH> disconnected from" in text and "the command line connected to" in text


def test_status_of_an_unbound_channel_names_the_default_when_it_applies() -> None:
    st = Status(None, [], Probe(False, "down"), None, None, G)
    text = blocks.status(st, "/ask").text
    assert "not connected" in text and f"default target `{G}`" in text and "`/ask connect`" in text


def test_long_lists_are_cut_to_fit_and_say_how_many_were_left_out() -> None:
    agents = tuple(AgentInfo(f"agent-{i:04d}", f"agent number {i}", "x" * 140) for i in range(400))
    text = blocks.agents_list(Catalog((), agents), "http://letta", "/letta").text
    assert len(text) <= blocks.TEXT_BUDGET and "more." in text
    groups = blocks.groups_list(Catalog(None, agents), "http://letta", "/letta").text
    assert "no group routes" in groups


def test_group_lists_escape_member_names_once() -> None:
    rnd = Target("group", (AgentRef("agent-r", "R&D <bot>"), BOB), G, "round_robin", "Q&A")
    for details in (True, False):
        text = blocks.groups_list(Catalog((rnd,), ()), "http://letta", "/letta", details).text
        assert "R&amp;D &lt;bot&gt;, bob" in text, text
        assert "&amp;amp;" not in text and "&amp;lt;" not in text


def test_usage_and_refusal_words() -> None:
    assert "`/ask connect group-&lt;uuid&gt;`" in blocks.usage("/ask").text
    assert blocks.usage("/letta", "I don't know `x`.").text.startswith("I don't know `x`.")
    assert blocks.refused("workspace admins and owners", "/letta").text.startswith(
        "Only workspace admins and owners may change"
    )
    assert blocks.problem("group x was not found.").text == "Group x was not found. Nothing was changed."


def test_status_shows_each_agents_feedback() -> None:
    from bridge.store.feedback import AgentFeedback

    feedback = (AgentFeedback("alice", 3, 1), AgentFeedback("<bob>", 0, 2))
    st = Status(binding(), [], Probe(True, "ok"), None, None, None, feedback)
    text = blocks.status(st, "/letta").text
    assert "*Feedback on replies here:* alice 👍 3 👎 1, &lt;bob&gt; 👍 0 👎 2" in text


def test_a_refusal_that_starts_with_an_id_shows_the_id_as_typed() -> None:
    """`/letta connect agent-0000…` on an App Server said "Agent-0000… is not an agent id": an id that does not
    exist, as the person would copy it. The bridge's own first words still start with a capital."""
    refused = "agent-00000000-0000-4000-8000-000000000000 is not an agent id of this Letta App Server"
    assert blocks.problem(refused).text.startswith("agent-00000000-0000-4000-8000-000000000000 is not")
    assert blocks.problem("group_x2 is not a group id.").text.startswith("group_x2 ")
    assert blocks.problem("give a group id.").text == "Give a group id. Nothing was changed."


def test_a_sleeptime_group_names_its_main_agent_and_its_agents_that_never_post() -> None:
    main = AgentRef("agent-00000000-0000-4000-8000-0000000000dd", "mainline")
    night = Target("group", (ALICE,), G, "sleeptime", "Night", manager=main)
    text = blocks.connected(Connected(binding(night), RunnerUse("auto", "bridge", ""), None)).text
    assert f"Pattern: `sleeptime`, main agent mainline (`{main.id}`)" in text
    assert "Sleeptime agents (they never post): alice" in text and "in speaking order" not in text
    assert "the bridge asks the main agent only" in text and "the main agent answers in the thread" in text
    assert blocks.connect_notice("U1", night) == (
        "<@U1> connected this channel to Night: mainline answers (sleeptime agents, which never post: alice)"
    )


def test_a_history_line_says_the_pattern_it_was_connected_with() -> None:
    entry = HistoryEntry("connect", f"{ALICE.id} {BOB.id}", "auto", "cli", AT, "dynamic, manager <chief> (agent-c)")
    st = Status(None, [entry], Probe(True, "up"), None, None, None)
    assert f"connected to `{ALICE.id} {BOB.id}` as dynamic, manager &lt;chief&gt; (agent-c) (runner auto)" in (
        blocks.status(st, "/letta").text
    )


def test_the_names_only_group_list_names_the_manager_too() -> None:
    """A member who may not configure sees who answers first as well: a sleeptime group's members never post."""
    sleepy = Target("group", (BOB,), G, "sleeptime", manager=AgentRef("agent-s", "sleepy & co"))
    text = blocks.groups_list(Catalog((sleepy,), ()), "http://letta", "/letta", details=False).text
    assert "pattern `sleeptime`, main agent sleepy &amp; co; sleeptime agents (they never post): bob" in text, text
