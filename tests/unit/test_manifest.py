from __future__ import annotations

from bridge.manifest import SCOPES, manifest, request_url
from tests.e2e.harness import REPO
from tests.fakes.slack_delivery import MESSAGE_EVENTS, bot_events


def test_the_repositorys_manifest_is_the_rendered_one() -> None:
    assert (REPO / "slack-app-manifest.yaml").read_text() == manifest()


def test_the_operators_url_and_command_are_filled_in_everywhere() -> None:
    text = manifest("https://bridge.acme.test/", "/crew")
    assert text.count("https://bridge.acme.test/slack/events") == 3 and "command: /crew" in text
    assert "messages_tab_enabled: true" in text and "- commands" in text
    assert "bridge.example.com" not in text and "replace" not in text, "a filled-in manifest says to fill it in"


def test_request_url_takes_a_base_or_the_full_endpoint() -> None:
    for given in ("https://x.test", "https://x.test/", "https://x.test/slack/events", " https://x.test/slack/events/"):
        assert request_url(given) == "https://x.test/slack/events"


def test_thread_follow_ups_reach_the_bridge_in_every_kind_of_conversation() -> None:
    """A follow-up without a mention is a `message` event, which Slack sends only under the subscription of its
    conversation's kind, with that kind's history scope: a group DM (mpim) was missing both, so its follow-ups
    never arrived while those in channels, private channels and DMs did."""
    events, scopes = bot_events(manifest()), {s.name for s in SCOPES}
    for kind, (event, scope) in MESSAGE_EVENTS.items():
        assert event in events, f"{kind}: no {event} subscription"
        assert scope in scopes, f"{kind}: no {scope} scope"


def test_each_optional_scope_check_warns_about_says_what_adding_it_is_for_in_a_sentence() -> None:
    """`check` warns "To <purpose>, add it": assistant:write's purpose was a noun ("agent sessions: …"), so every
    newcomer's first `check` (the scope comes with declaring the app an agent) read "To agent sessions: …"."""
    from bridge.checks import scope_checks

    granted = {s.name for s in SCOPES if not s.optional}
    lines = {c.detail.split(" ")[0]: c.detail for c in scope_checks(granted)}
    assert set(lines) == {s.name for s in SCOPES if s.optional}
    assert "To show agent sessions: Slack's own working state" in lines["assistant:write"], lines["assistant:write"]
    assert "To agent sessions" not in lines["assistant:write"]
