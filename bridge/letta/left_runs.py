"""Before a send under a key (an agent, a conversation) that an earlier send may have left running at Letta (a
process killed or stopped mid-send, which Letta runs on): wait while Letta lists such a run, for `busy_wait` at
most. Two runs at once on one agent would mix their contexts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.letta.errors import Kind, LettaError
from bridge.letta.transport import MAX_RETRY_DELAY

log = logging.getLogger(__name__)

RUNS_LOOK_EVERY = 2.0  # seconds, at most, between two looks at a run an earlier send left going
# How old a run an earlier send left going can be (TURN_DEADLINE_SECONDS' default): 0.16.8 lists a non-streamed
# conversation send's run as `created` for ever (reference §19), and another client's such send would otherwise
# hold every first send to its agent for LETTA_BUSY_WAIT_SECONDS after each start.
LEFT_GOING_WITHIN = timedelta(minutes=10)
# Failures of a run list that pass (`runs_ended` looks again): any other (no run route, a refused key, a list it
# cannot read) means the server cannot say, and looking again would only hold the send for nothing; Letta not
# reached at all, the send would not reach it either, and its failure is said at once rather than after busy_wait.
RUNS_PASSING = frozenset({Kind.TIMEOUT, Kind.DISCONNECTED, Kind.RATE_LIMITED, Kind.SERVER_ERROR})
# How long a run list failing on the way is asked again: a blip passes within seconds; a list failing longer is a
# Letta that is down (a proxy's 502 page), whose send would fail too, and whose failure is then said without
# holding each send for busy_wait.
RUNS_PASSING_FOR = 4.0
# The client's run list: (agent, conversation or None, created no earlier than) -> the runs still going.
ActiveRuns = Callable[[str, str | None, datetime], Awaitable[list[dict[str, Any]]]]


async def runs_ended(active_runs: ActiveRuns, agent_id: str, conversation_id: str | None, busy_wait: float) -> None:
    """Wait while the agent (the conversation) has a run going that began within LEFT_GOING_WITHIN, for
    `busy_wait` at most (as for a busy conversation a server with Redis refuses a send to); a server that
    cannot say (no run route, a refused key, an unreadable list) waits for nothing. A list that fails on the way
    (a gateway's 502, a timeout, a rate limit) is asked again for RUNS_PASSING_FOR: sending at once would let
    the send go beside the run it is there to wait out."""
    loop = asyncio.get_running_loop()
    until = loop.time() + busy_wait
    passing_until = loop.time() + min(busy_wait, RUNS_PASSING_FOR)
    delay = 0.25
    while True:
        try:
            runs = await active_runs(agent_id, conversation_id, datetime.now(UTC) - LEFT_GOING_WITHIN)
        except LettaError as error:
            if not _passing(error) or loop.time() >= passing_until:
                log.warning("letta runs not listed before a send agent=%s kind=%s", agent_id, error.kind)
                return
            log.info("letta runs not listed before a send, looking again agent=%s kind=%s", agent_id, error.kind)
            runs = None
        if runs is not None and not runs:
            return
        if loop.time() >= until:
            log.warning("letta run still going after %ss, sending anyway agent=%s", busy_wait, agent_id)
            return
        if runs:
            log.info("letta run left going by an earlier send, waiting agent=%s runs=%s", agent_id, len(runs))
        await asyncio.sleep(delay)
        delay = min(delay * 2, RUNS_LOOK_EVERY)


def _passing(error: LettaError) -> bool:
    """A run list's failure that a moment may mend; a rate limit with a Retry-After longer than the transport waits
    out is said to the person at once (transport.MAX_RETRY_DELAY), not looked at again."""
    if error.kind not in RUNS_PASSING or error.redirected:
        return False
    return error.kind != Kind.RATE_LIMITED or (error.retry_after or 0.0) <= MAX_RETRY_DELAY
