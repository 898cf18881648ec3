"""Ids the bridge makes up: a request id for the log lines of one Slack request or Letta call, and the otid each
turn's Letta sends carry.

Drawn from `random` (seeded from the OS at start, and again in a forked child), not from uuid4: os.urandom lets go
of the interpreter lock at every call, and the thread that acknowledges Slack's events then waits to win it back
from the thread running turns, once more per acknowledgement. Neither id is a secret; they must only not repeat.
"""

from __future__ import annotations

import random
import uuid


def request_id() -> str:
    """12 hex digits: enough to tell a process's requests apart in its logs."""
    return f"{random.getrandbits(48):012x}"


def otid() -> str:
    """A version 4 UUID, as Letta's clients make them."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))
