"""The /letta slash command: read-only for now (help and status); binding is done with the CLI."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bridge.store import Store

USAGE = (
    "*/letta status*: what this channel is connected to\n"
    "*/letta help*: this text\n"
    "An operator connects a channel on the bridge's host: "
    "`python -m bridge channels connect {channel} group-<uuid>` (or agent ids, in speaking order). "
    "Then mention me in the channel."
)


def register(app: AsyncApp, store: Store, command: str = "/letta") -> None:
    @app.command(command)
    async def on_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        words = str(command.get("text", "")).split()
        channel = str(command.get("channel_id", ""))
        if words[:1] == ["status"]:
            binding = await store.get_binding(str(command.get("team_id", "")), channel)
            if binding is None:
                await ack(text="This channel is not connected to Letta.\n" + USAGE.format(channel=channel))
                return
            t = binding.target
            agents = ", ".join(a.name for a in t.agents)
            what = f"group {t.description or t.group_id} ({t.manager_type})" if t.kind == "group" else "agents"
            when = binding.bound_at.strftime("%Y-%m-%d %H:%M UTC")
            await ack(
                text=f"Connected to {what}: {agents}. Runner: {binding.runner}. Set by {binding.bound_by} on {when}."
            )
            return
        await ack(text=USAGE.format(channel=channel))
