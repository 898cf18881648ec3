"""The Letta App Server (self-hosted Letta since Letta Code: one WebSocket protocol, no REST API).

`AppServerClient` (client.py) over one long-lived socket (socket.py); the frames as pydantic models (wire.py
read, outgoing.py sent); one turn's frames read as the bridge's events (turn.py). The bridge's Letta interface over it
is `bridge/letta/appserver_letta.py`, its runner `bridge/letta/appserver_runner.py` (docs/app-server.md).
"""

from bridge.letta.appserver.client import AppServerClient, FoundSend
from bridge.letta.appserver.probe import ServerInfo, endpoints
from bridge.letta.appserver.socket import AppServerSocket, SocketBusy
from bridge.letta.appserver.turn import (
    Finished,
    Reasoning,
    TextDelta,
    ToolAsked,
    ToolCalled,
    ToolDenied,
    ToolReturned,
    ToolStarted,
    TurnEvent,
    conversation_stuck,
)

__all__ = [
    "AppServerClient",
    "AppServerSocket",
    "Finished",
    "FoundSend",
    "Reasoning",
    "ServerInfo",
    "SocketBusy",
    "TextDelta",
    "ToolAsked",
    "ToolCalled",
    "ToolDenied",
    "ToolReturned",
    "ToolStarted",
    "TurnEvent",
    "conversation_stuck",
    "endpoints",
]
