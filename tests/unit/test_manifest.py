from __future__ import annotations

from bridge.manifest import manifest, request_url
from tests.e2e.harness import REPO


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
