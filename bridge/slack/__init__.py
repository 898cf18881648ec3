"""The Slack side: listeners, event decisions, rendering and posting."""
