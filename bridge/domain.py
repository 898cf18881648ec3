"""Plain dataclasses the relay passes between the Slack side, the Letta side and the store.

Neither `bridge.slack` nor `bridge.letta` imports the other; both speak these types.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

RunnerChoice = Literal["auto", "server", "bridge"]
BROADCAST = "broadcast"
# The patterns the bridge plays for a list of agents (a bridge-defined group; letta/patterns.py).
PATTERNS = ("round_robin", "supervisor", "dynamic", BROADCAST)
RUNNER_CHOICES: tuple[RunnerChoice, ...] = ("auto", "server", "bridge")
# Who may change a channel's binding from Slack (read-only commands are open to everyone).
ConfigureBy = Literal["admins", "everyone", "creator"]


@dataclass(frozen=True)
class Pattern:
    """A pattern asked for a list of agents, as a person gave it (CLI flags, /letta words or the menu): `name`
    None keeps the target as it is. `bridge.targets.with_pattern` checks it against the rules."""

    name: str | None = None
    manager: str | None = None  # an agent id
    max_turns: int | None = None
    termination_token: str | None = None


@dataclass(frozen=True)
class AgentRef:
    id: str
    name: str


@dataclass(frozen=True)
class Target:
    """What a channel talks to: a Letta group, or an ordered list of agents (servers without groups)."""

    kind: Literal["group", "agents"]
    agents: tuple[AgentRef, ...]
    group_id: str | None = None
    manager_type: str | None = None
    description: str = ""
    # The group's manager agent (supervisor, dynamic) or main agent (sleeptime); `agents` are the workers.
    manager: AgentRef | None = None
    max_turns: int | None = None
    termination_token: str | None = None
    # Bridge runner only: every agent gets the user's message at once, replies posted as they arrive. Stored
    # as the binding's pattern (manager_type "broadcast"), so both stores keep it without a schema change.
    broadcast: bool = False
    # When the channel's binding was saved (wall clock; set from Binding.bound_at where a turn runs it, not kept in
    # the store): a group record read before then may be older than what the connect showed (letta/groups.py).
    saved_at: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.manager_type == BROADCAST and not self.broadcast:
            object.__setattr__(self, "broadcast", True)

    @property
    def label(self) -> str:
        """The target in one phrase (the channel's notice), naming the agent that answers first where the listed
        ones do not all answer: a sleeptime group's main agent, a supervisor or dynamic group's manager."""
        names = ", ".join(a.name for a in self.agents) or "none left"  # all deleted: a manager that answers alone
        if self.kind == "group":
            title = self.description or self.group_id or "group"
        elif self.manager_type:  # a bridge-defined group
            title = f"{self.manager_type} group of agents"
        else:
            return f"agents: {names}"
        if self.manager is not None and self.manager_type == "sleeptime":
            return f"{title}: {self.manager.name} answers (sleeptime agents, which never post: {names})"
        manager = f", managed by {self.manager.name}" if self.manager else ""
        return f"{title}{manager}: {names}"

    @property
    def ref(self) -> str:
        return self.group_id or " ".join(a.id for a in self.agents)

    @property
    def members(self) -> tuple[AgentRef, ...]:
        """Every agent the target may ask: its agents, then its manager."""
        return (*self.agents, *((self.manager,) if self.manager else ()))

    @property
    def names(self) -> tuple[str, ...]:
        """Every agent's name, the manager's too: no person may be shown under one of them."""
        return tuple(a.name for a in self.members)

    def agent_named(self, name: str | None) -> AgentRef | None:
        for agent in self.agents:
            if agent.name == name:
                return agent
        return None

    def agent_with_id(self, agent_id: str | None) -> AgentRef | None:
        for agent in self.agents:
            if agent.id == agent_id:
                return agent
        return self.manager if self.manager is not None and self.manager.id == agent_id else None

    @property
    def pattern(self) -> str:
        """How the group answers: its manager type, or the agents in order for an agent list."""
        return self.manager_type or ("round_robin" if self.kind == "group" else "in order")


@dataclass(frozen=True)
class Binding:
    team_id: str
    channel_id: str
    target: Target
    runner: RunnerChoice = "auto"
    bound_by: str = ""
    bound_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class HistoryEntry:
    """One change to a channel's binding (connect, disconnect), as `/letta status` shows it."""

    action: str
    target: str
    runner: str
    actor: str
    at: datetime
    pattern: str = ""  # the pattern with its manager and limits, in plain words ("" for a list, or before v18)


@dataclass(frozen=True)
class AgentInfo:
    """An agent as a server's agent list shows it."""

    id: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class Catalog:
    """What a Letta server offers to bind. `groups` is None when the server has no group routes;
    `agents_complete` or `groups_complete` is False when that list was cut at the bridge's cap (each said of its
    own list only: a server with many agents and a few groups lists every group)."""

    groups: tuple[Target, ...] | None
    agents: tuple[AgentInfo, ...]
    agents_complete: bool = True
    groups_complete: bool = True


@dataclass(frozen=True)
class SharedFile:
    """A file shared with a message, as Slack described it (no bytes): enough to describe it to an agent and to
    fetch it later. `url` is empty when Slack withheld the file's details (a Slack Connect file)."""

    id: str
    name: str
    mimetype: str = ""
    filetype: str = ""
    size: int = 0
    permalink: str = ""
    url: str = ""


@dataclass(frozen=True)
class Image:
    """An image for the agents: its media type and its bytes, base64 (as both Letta wires carry it)."""

    media_type: str
    data: str
    name: str = ""


@dataclass(frozen=True)
class Turn:
    """One accepted human message that the channel's group must answer."""

    team_id: str
    channel_id: str
    message_ts: str
    thread_ts: str
    user_id: str
    text: str
    event_id: str = ""
    follow_up: bool = False  # a reply in a thread without a mention: runs only if the bot already answered there
    files: tuple[SharedFile, ...] = ()


ToolState = Literal["pending", "running", "done", "failed"]


@dataclass(frozen=True)
class ToolProgress:
    """One tool call of a reply still being written, as far as it got: `call_id` names it across its updates,
    `args` is its arguments on one line, `output` why it failed (empty otherwise)."""

    call_id: str
    name: str
    args: str
    state: ToolState
    output: str = ""


class Drafts(Protocol):
    """Where a reply still being streamed token by token is shown growing (the Slack thread's live message).

    `step` and `index` name the reply the draft will become (`AgentReply.step`, `.index`); `text` is all of it
    so far. Best effort: a draft that cannot be shown is dropped, the final reply is posted regardless.
    """

    async def grow(self, step: str, index: int, agent_name: str, text: str) -> None: ...

    async def tool(self, step: str, index: int, agent_name: str, progress: ToolProgress) -> None:
        """A tool call of that reply started, ran or ended (shown as a task where drafts are Slack streams)."""
        ...

    async def shown_before(self, step: str, index: int) -> bool:
        """Whether an earlier run of this turn (a process that died) showed that reply's draft in the thread."""
        ...


class Threads(Protocol):
    """Where an agent hears the turn's Slack thread: a Letta conversation of its own per thread (Letta 0.16.8,
    Cloud), made and stored on the thread's first send to that agent; None for the agent's one shared context."""

    async def conversation(self, agent_id: str) -> str | None: ...

    async def renew(self, agent_id: str, gone: str) -> str:
        """The stored conversation `gone` no longer exists on Letta: a new one, stored in its place."""
        ...

    async def forget(self, agent_id: str, stale: str) -> None:
        """The thread leaves the stored conversation `stale`: its next send to the agent makes a new one (whose
        first send carries the thread so far, as any new one's does)."""
        ...

    async def earlier(self, agent_id: str) -> str:
        """What the agent's first send in a conversation made for it this turn is prefixed with: the thread so
        far, once, when the thread had turns before; empty otherwise."""
        ...

    def fresh(self, agent_id: str) -> bool:
        """Whether the send `earlier` was last asked for is the first to a conversation made for the agent this
        turn (the one that carries the thread: its context, its question, or the thread so far)."""
        ...

    async def unsent(self, agent_id: str, conversation: str) -> None:
        """The first send to `conversation` (made for the agent) never reached it: the conversation is left, and
        the thread so far is owed again, at the next turn."""
        ...


@dataclass(frozen=True)
class ToolCall:
    """A tool call an agent wants to run; `arguments` as the model wrote them (JSON text, usually)."""

    tool_call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ApprovalRequest:
    """An agent stopped to ask whether its tool calls may run (a REST turn's `stop_reason: requires_approval`, an
    App Server's `control_request` `can_use_tool`). `step` is the journal step it belongs to; `request_id` the
    server's handle (the approval request message, or `perm-<tool_call_id>`); `conversation` where it waits."""

    agent_name: str
    agent_id: str
    step: str
    calls: tuple[ToolCall, ...]
    request_id: str = ""
    conversation: str | None = None


@dataclass(frozen=True)
class Decision:
    """A person's (or the timeout's) answer to one tool call."""

    tool_call_id: str
    approve: bool
    reason: str = ""


@dataclass(frozen=True)
class PendingApproval:
    """A request recorded before a restart: `sent` once its decisions may have reached Letta."""

    request: ApprovalRequest
    sent: bool


class Denials(Protocol):
    """Where a stop's denials are journaled: a request the agent makes in answer to one is denied too (0.16.8 keeps
    it pending and refuses every later message), once, however the process ends (letta/approving.py)."""

    async def denying(self, request: ApprovalRequest) -> bool:
        """Recorded as stopped (no card) and marked as being sent; False when marked before, so it is denied once."""
        ...

    async def left_pending(self, request: ApprovalRequest, rounds: int) -> None:
        """The agent kept asking past the bound: the thread is told what still waits on Letta and how to clear it."""
        ...


class Approvals(Denials, Protocol):
    """Where a turn asks people about tool calls (the Slack thread's approval cards), durably and once.

    `decide` posts a card per call (once, even across restarts) and waits for every call's decision, the
    timeout denying what nobody decided; `sending` is recorded before the decisions go to Letta; `settled` says
    how that ended (`refused`: the server's words when it rejected them as stale); `resumed` is the request a
    step had recorded before a restart, if any."""

    async def decide(self, request: ApprovalRequest) -> tuple[Decision, ...]: ...

    async def decide_unless(
        self, request: ApprovalRequest, ended: Callable[[], Awaitable[None]] | None
    ) -> tuple[Decision, ...] | None:
        """`decide`, or None once `ended` returns first (the turn over where it runs): the wait is over, the turn
        goes on."""
        ...

    async def sending(self, request: ApprovalRequest) -> None: ...

    async def settled(self, request: ApprovalRequest, refused: str | None = None) -> None: ...

    async def resumed(self, step: str) -> PendingApproval | None: ...

    @property
    def stopped(self) -> bool:
        """A person stopped the turn, or its deadline passed: what it waited for will never be decided in Slack."""
        ...


@dataclass(frozen=True)
class TurnInput:
    """What the runners send for one turn: the text with its context prefix, who said it, where (`threads` is
    None where the thread is not a conversation), where drafts go when replies are token-streamed, where tool
    calls are approved, and whether the agents may use the server's own tools (App Server: asked in Slack).
    `images` go with the text to every agent asked, but for a dynamic manager choosing who speaks (files that are
    not images are described in the text)."""

    text: str
    otid: str
    sender: str | None
    images: tuple[Image, ...] = ()
    threads: Threads | None = field(default=None, compare=False)
    drafts: Drafts | None = field(default=None, compare=False)
    approvals: Approvals | None = field(default=None, compare=False)
    tools: bool = False


@dataclass(frozen=True)
class Note:
    """What an agent did on the way to its reply: a reasoning step, or a tool call and how it ended."""

    kind: Literal["reasoning", "tool"]
    text: str


@dataclass(frozen=True)
class AgentReply:
    agent_name: str
    text: str
    agent_id: str | None = None
    step: str = ""
    index: int = 0
    # Shown only in channels that ask for them; kept with the reply so a replayed step shows the same.
    notes: tuple[Note, ...] = ()
    step_id: str = ""  # the Letta step that wrote its last words, where the server names it (feedback goes there)

    def __post_init__(self) -> None:
        # Read back from JSON, notes are lists of dicts.
        if any(not isinstance(n, Note) for n in self.notes) or not isinstance(self.notes, tuple):
            notes = tuple(n if isinstance(n, Note) else Note(**n) for n in self.notes)
            object.__setattr__(self, "notes", notes)


@dataclass(frozen=True)
class AgentFailure:
    """An agent (or the whole group) could not answer; `message` is already in plain words."""

    agent_name: str | None
    message: str
    kind: str
    agent_id: str | None = None
    request_id: str = ""
    step: str = ""
    index: int = 0
    pending_approval: bool = False  # Letta refused the message: the agent waits for a decision on a tool call
    target_gone: bool = False  # Letta does not know the agent or group: the channel must be connected again


TurnEvent = AgentReply | AgentFailure


class Transcript(Protocol):
    """What each agent of a bridge-run group has not seen yet (durable, per binding).

    `unseen` returns the other agents' replies past the agent's cursor and the sequence number they
    reach; `Journal.answered(..., seen_upto=...)` moves the cursor there and records the agent's reply.
    """

    async def unseen(self, agent_id: str) -> tuple[list[AgentReply], int | None]: ...


StepState = Literal["sending", "answered", "failed"]


@dataclass(frozen=True)
class StepRecord:
    """What is durably known of one Letta send of a turn (one agent, or the whole group)."""

    state: StepState
    replies: tuple[AgentReply, ...] = ()
    failure: AgentFailure | None = None
    since: datetime | None = None  # when the step's state was written (for `sending`: just before the send)


class Journal(Protocol):
    """A turn's durable progress, so that a restarted bridge neither loses nor repeats a Letta send.

    `sending` is written before the HTTP call; `answered` records the outcome together with the
    transcript move for bridge-run agents, in one transaction.
    """

    otid: str

    async def step(self, key: str) -> StepRecord | None: ...

    async def sending(self, key: str) -> None: ...

    async def answered(
        self,
        key: str,
        replies: list[AgentReply],
        failure: AgentFailure | None = None,
        seen_upto: int | None = None,
    ) -> None: ...
