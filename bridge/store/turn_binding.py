"""The binding a turn started with, kept on the turn (schema v17): a turn cut short (the process killed, its
binding taken over by another process) is resumed with the agents it had begun to ask, whatever the channel is
bound to by then. Resumed with the channel's new agents instead, it would leave an earlier agent's send, and the
reply it may have written, unsettled, and ask agents the person never addressed in the middle of a turn."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.domain import AgentRef, Binding, SharedFile, Target

SQLITE_V17 = "ALTER TABLE turns ADD COLUMN binding TEXT;"
POSTGRES_V17 = "ALTER TABLE turns ADD COLUMN IF NOT EXISTS binding TEXT;"


# A thread the bot answers in (Store.thread_answered) has a turn that waits, ran or runs: not one that ended unbound
# (its notice asked for a new mention), nor one stopped or withdrawn while it waited, which no process took (schema
# v17 on, a taken turn has its binding; a turn stopped before v17 does not count, as it may have been waiting).
ANSWERED_IN_THREAD = "(status <> 'unbound' AND (status <> 'stopped' OR binding IS NOT NULL))"


@dataclass(frozen=True)
class Taken:
    """A turn marked running: its words and files as they are now (an edit while it waited may have changed them),
    and the binding it runs with (the one it started with, or, for a first start, the one it was given; None when it
    was given none)."""

    words: str
    binding: Binding | None
    files: tuple[SharedFile, ...] = ()


def binding_json(binding: Binding | None) -> str:
    """JSON `null` for a turn taken unbound: a turn whose column is set was taken (run), which a turn stopped or
    withdrawn while it waited never was (`TAKEN`)."""
    if binding is None:
        return "null"
    target = dataclasses.asdict(binding.target)
    target.pop("saved_at", None)  # the binding's own bound_at, kept below
    return json.dumps(
        {
            "team_id": binding.team_id,
            "channel_id": binding.channel_id,
            "target": target,
            "runner": binding.runner,
            "bound_by": binding.bound_by,
            "bound_at": binding.bound_at.isoformat(),
        }
    )


def _agent(item: dict[str, Any]) -> AgentRef:
    return AgentRef(str(item["id"]), str(item["name"]))


def binding_from_json(text: str | None) -> Binding | None:
    data = json.loads(text) if text else None
    if data is None:
        return None
    fields = dict(data["target"])
    fields["agents"] = tuple(_agent(a) for a in fields["agents"])
    fields["manager"] = _agent(fields["manager"]) if fields.get("manager") else None
    return Binding(
        team_id=data["team_id"],
        channel_id=data["channel_id"],
        target=Target(**fields),
        runner=data["runner"],
        bound_by=data["bound_by"],
        bound_at=datetime.fromisoformat(data["bound_at"]),
    )
