"""People and channels named in a mention, and in the thread before it, reach the agents by name, not as Slack's
ids (slack/readable.py, applied as the turn's input is assembled)."""

from __future__ import annotations

from tests.e2e.conftest import World
from tests.e2e.test_mention_lines import sent_for_mention
from tests.e2e.test_mentions import thread_posts
from tests.e2e.test_threads import agent_inputs
from tests.fakes.signing import event_body, mention_event


def test_a_colleague_and_a_channel_named_in_a_mention_reach_the_agents_by_name(world: World) -> None:
    crew = world.bound_crew(("alice",))
    world.slack.add_user("U0456EFGH", "bob_human", display_name="bob_human")
    root_ts = world.slack.add_message(crew.channel, "ship it? cc <@U0456EFGH>", user="U0456EFGH")
    event = mention_event("x", channel=crew.channel, thread_ts=root_ts)
    event["text"] = "<@U0BOTABCD> what did <@U0456EFGH> decide about <#C0999ZZZZ|deploys>?"
    world.slack.add_message(crew.channel, event["text"], ts=event["ts"], thread_ts=root_ts)
    assert world.bridge.post(event_body(event)).status_code == 200
    thread_posts(world, crew.channel, root_ts, 1)
    sent = agent_inputs(world, crew.agents["alice"])[-1]
    assert "U0456EFGH" not in sent and "<#" not in sent, sent
    assert sent.endswith("what did @bob_human decide about #deploys?"), sent
    assert "ship it? cc @bob_human" in sent, sent  # the thread before it too


def test_a_link_in_a_mention_reaches_the_agents_as_a_person_sees_it_not_as_slack_markup(world: World) -> None:
    """Slack sends a typed `example.com/docs` as `<https://example.com/docs|example.com/docs>`, an email as
    `<mailto:…|…>`; agents that echoed that markup wrote a broken link or literal `&lt;mailto:…&gt;` text."""
    text = "<@U0BOTABCD> is <https://example.com/docs|example.com/docs> up? ask <mailto:bob@x.com|bob@x.com>"
    sent = sent_for_mention(world, text)
    assert "<https://" not in sent and "<mailto:" not in sent and "|" not in sent, sent
    assert sent.endswith("is example.com/docs up? ask bob@x.com"), sent


def test_a_links_label_holding_a_gt_and_a_link_typed_as_text_reach_the_agents_as_the_person_sees_them(
    world: World,
) -> None:
    """Slack sends a label's `>` as `&gt;`: the mention's label stopped at it (`step 1  (https://x.com/a) step 2>`)
    while the thread before it read it whole; a link typed as text (`&lt;https://…|…&gt;`) was read as a link."""
    crew = world.bound_crew(("alice",))
    said = "see <https://x.com/a|step 1 &gt; step 2> or &lt;https://evil.example|docs.corp.com&gt;"
    root_ts = world.slack.add_message(crew.channel, said, user="U0456EFGH")
    event = mention_event("x", channel=crew.channel, thread_ts=root_ts)
    event["text"] = f"<@U0BOTABCD> {said}"
    world.slack.add_message(crew.channel, event["text"], ts=event["ts"], thread_ts=root_ts)
    assert world.bridge.post(event_body(event)).status_code == 200
    thread_posts(world, crew.channel, root_ts, 1)
    sent = agent_inputs(world, crew.agents["alice"])[-1]
    words = "see step 1 > step 2 (https://x.com/a) or <https://evil.example|docs.corp.com>"
    assert sent.endswith(words), sent
    assert f'"text": "{words}"' in sent, sent  # the thread before it, quoted
