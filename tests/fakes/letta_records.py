"""What the fake Letta server (tests/fakes/letta.py) records and keeps: each request, each agent turn that ran,
its agents, stored messages and the failures a test asked for."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

Handler = Callable[..., Awaitable[web.StreamResponse]]
ReplySpec = str | list[str] | Callable[[str], str | list[str]]
SEND_PATH = re.compile(r"/v1/(agents|groups)/[^/]+/messages(/stream)?|/v1/conversations/[^/]+/messages")


@dataclass
class Recorded:
    """One HTTP request as the fake saw it. ``status`` and ``finished`` stay None until it is answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes
    status: int | None = None
    started: float = 0.0
    finished: float | None = None


@dataclass
class AgentInput:
    """One agent turn that actually ran, with what that agent received (to check routing and concurrency)."""

    agent_id: str
    agent_name: str
    text: str
    messages: list[dict[str, Any]]
    otid: str | None
    name: str | None
    started: float
    finished: float | None = None
    conversation: str | None = None  # the conversation it ran in (0.16.8), None for the agent's own thread
    run_id: str | None = None
    cancelled: bool = False  # a cancel route reached it while it ran (letta_cancel.py)


@dataclass
class Agent:
    id: str
    name: str
    created: datetime
    system_message_id: str


@dataclass
class Rule:
    kind: str  # "fail", "hang", "busy" or "gateway"
    method: str
    pattern: re.Pattern[str]
    times: int
    status: int = 500
    body: Any = None
    headers: dict[str, str] | None = None
    delay: float = 0.0
    raw: bytes | None = None


@dataclass
class Stored:
    seq: int
    group_id: str | None
    msg: dict[str, Any] = field(repr=False)
    conversation: str | None = None


class Hung(Exception):
    """Raised inside a handler when stop() releases a request that must never be answered."""
