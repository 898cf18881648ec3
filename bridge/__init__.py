"""Slack <-> Letta multi-agent group bridge."""

__version__ = "0.1.0"
