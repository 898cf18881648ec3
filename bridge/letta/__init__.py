"""The Letta side: HTTP client, wire models and the two ways of running a group's turn."""
