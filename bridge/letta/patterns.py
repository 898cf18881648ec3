"""How the bridge runner plays each Letta group pattern, one journaled agent send at a time.

- round robin (and an agent list): each agent in order, `max_turns` sends in all where set.
- supervisor: the workers get the user's message at once (different agents, so no overlap), each reply is
  posted as it arrives; then the manager gets their replies, labelled (`supervisor_message`), and answers last,
  unless a worker met a failure the manager would meet too (SERVER_WIDE): said once (said_once.py).
- dynamic: the manager is asked who speaks next (`DYNAMIC_PROMPT`, text only, never drafted in the thread); the
  member its answer names speaks; up to `max_turns` rounds (default: one per member), ending early on the group's
  `termination_token` or on an answer that names no member.
- sleeptime: only the main agent (the group's manager agent) is asked; the sleeptime agents never post.
- broadcast: every agent at once, each reply posted as it arrives; a failure of the server itself said once.

`play` picks the pattern; a runner only says how one agent is asked (`Step.step`), so the REST bridge runner and
the App Server runner play the same patterns with the same message formats. A binding of agents may carry a
pattern of its own (a bridge-defined group: `channels connect ... --pattern supervisor --manager agent-...`),
played the same way as a Letta group record's.

Every send is one journal step: keyed by the agent id for an agent's first send in a turn (that step moves the
agent's transcript cursor), `choose:<round>` for a dynamic manager's choice, `<agent id>#<n>` for a dynamic
member's n-th send in one turn. Each step's otid is derived from the turn's, so a restart finds it in history.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from bridge.domain import (
    AgentFailure,
    AgentRef,
    AgentReply,
    Journal,
    StepRecord,
    Target,
    Transcript,
    TurnEvent,
    TurnInput,
)
from bridge.letta.errors import SERVER_WIDE
from bridge.letta.quoting import QUOTED_CHARS, block, quoted
from bridge.letta.said_once import SaidOnce, not_asked

Frame = Callable[[list[AgentReply]], str]

UNSEEN_HEADER = "Replies in your group since you last spoke:"
WORKERS_HEADER = "Your workers answered:"
NO_WORKERS = "None of your workers answered this time."
SAID_HEADER = "Said so far in this turn:"
DYNAMIC_PROMPT = (
    "You choose who speaks next in this group. Members: {members}.\n"
    "Answer with the name of the one member who should speak next{ending}."
)
NO_SPEAKER = "{manager} named no member to speak next, so the group has nothing more to say."
NO_MANAGER = "This {kind} group has no manager agent on Letta, so nobody was asked: give it one, then ask again."
MANAGED = ("supervisor", "dynamic", "sleeptime")


def compose(unseen: Sequence[AgentReply], text: str) -> str:
    """The documented bridge-runner format: unseen group replies, one quoted line each (letta/quoting.py),
    then the user's message."""
    if not unseen:
        return text
    return "\n".join([block(UNSEEN_HEADER, labelled(unseen)), "", text])


def message(earlier: str, unseen: Sequence[AgentReply], text: str, frame: Frame | None) -> str:
    """One send's words: the thread so far (`earlier`, for a conversation just made), then the group's unseen
    replies, less those the thread so far quotes already (an agent whose conversation was made again would read
    them twice), framed as the pattern asks, else before the person's message."""
    if earlier:  # quoted there cut to QUOTED_CHARS, as a long reply is
        unseen = [r for r in unseen if quoted("agent", r.agent_name, r.text[:QUOTED_CHARS]) not in earlier]
    return earlier + (frame(list(unseen)) if frame is not None else compose(unseen, text))


def again(unseen: Sequence[AgentReply], text: str) -> str:
    """An agent's later send in one turn (round robin past its members, a dynamic member's next word): only the
    group's replies since it last spoke, as Letta's own managers pass them; the person's message only when
    nothing is new."""
    return block(UNSEEN_HEADER, labelled(unseen)) if unseen else text


def step_otid(otid: str, key: str) -> str:
    """The otid of one send of a turn: the turn's own for an agent's first send, a derived uuid otherwise."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{otid}/{key}"))


def labelled(replies: Sequence[AgentReply]) -> list[str]:
    return [quoted("agent", reply.agent_name, reply.text) for reply in replies]


def supervisor_message(older: Sequence[AgentReply], workers: Sequence[AgentReply], text: str) -> str:
    """The manager's message: earlier unseen replies (the usual format), the user's message, then this turn's
    worker replies under `WORKERS_HEADER` (`NO_WORKERS` when none answered: Letta's manager answers then too)."""
    told = block(WORKERS_HEADER, labelled(workers)) if workers else NO_WORKERS
    return "\n".join([compose(older, text), "", told])


def dynamic_prompt(
    text: str, said: Sequence[AgentReply], members: Sequence[str], token: str | None, last: str | None = None
) -> str:
    """`members`: those who may speak next (everyone but `last`, the member who just spoke)."""
    ending = f", or {token} if nobody needs to say more" if token else ""
    parts = [text, ""]
    if said:
        parts += [block(SAID_HEADER, labelled(said)), ""]
    offered = ", ".join(members) + (f" ({last} just spoke)" if last else "")
    parts.append(DYNAMIC_PROMPT.format(members=offered, ending=ending))
    return "\n".join(parts)


def chosen(answer: str, members: Sequence[AgentRef]) -> AgentRef | None:
    """The member the manager's answer names: the whole answer if it is a name (or an id), else the name (or
    id) said first. Letta's own manager is offered the members by id, so an answer may name one that way."""
    plain = answer.strip().strip(".!\"'`*").strip().lower()
    for agent in members:
        if plain in (agent.name.lower(), agent.id.lower()):
            return agent
    best: tuple[int, int, AgentRef] | None = None
    for agent in members:
        for word in (agent.name.lower(), agent.id.lower()):
            match = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", answer.lower())
            if match is not None and (best is None or (match.start(), -len(word)) < best[:2]):
                best = (match.start(), -len(word), agent)
    return best[2] if best else None


def replay(record: StepRecord) -> list[TurnEvent]:
    """A journaled step's outcome, as its events."""
    events: list[TurnEvent] = list(record.replies)
    if record.failure is not None:
        events.append(record.failure)
    return events


class Step:
    """One journaled send: replayed when done, asked (after a history lookup when it was in flight) otherwise."""

    async def step(
        self,
        agent: AgentRef,
        turn: TurnInput,
        transcript: Transcript,
        journal: Journal,
        key: str | None = None,
        frame: Frame | None = None,
    ) -> list[TurnEvent]:
        key = key or agent.id
        record = await journal.step(key)
        if record is not None and record.state != "sending":
            return replay(record)
        return await self.ask(agent, turn, transcript, journal, key, frame, record)

    async def ask(
        self,
        agent: AgentRef,
        turn: TurnInput,
        transcript: Transcript,
        journal: Journal,
        key: str,
        frame: Frame | None,
        record: StepRecord | None,
    ) -> list[TurnEvent]:
        """Ask `agent` once (`record`: the step was in flight before a restart: look it up before sending)."""
        raise NotImplementedError


def speak(
    runner: Step, agent: AgentRef, turn: TurnInput, transcript: Transcript, journal: Journal, key: str
) -> Awaitable[list[TurnEvent]]:
    """One of `agent`'s sends of the turn: its first carries the person's message (and files), a later one
    (`<id>#n`) only what the group said since (`again`), never the person's words a second time."""
    if key == agent.id:
        return runner.step(agent, turn, transcript, journal, key)
    later = dataclasses.replace(turn, images=(), sender=None)
    return runner.step(agent, later, transcript, journal, key, lambda unseen: again(unseen, turn.text))


async def together(
    runner: Step,
    agents: Sequence[AgentRef],
    turn: TurnInput,
    transcript: Transcript,
    journal: Journal,
    once: SaidOnce,
) -> AsyncIterator[list[TurnEvent]]:
    """Every agent at once; each agent's events as soon as that agent is done, less a failure of the server
    itself said already (`once` holds it back, for its note)."""
    tasks = [asyncio.ensure_future(runner.step(agent, turn, transcript, journal)) for agent in agents]
    try:
        for done in asyncio.as_completed(tasks):
            yield once.sift(await done)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def supervise(
    runner: Step, target: Target, manager: AgentRef, turn: TurnInput, transcript: Transcript, journal: Journal
) -> AsyncIterator[TurnEvent]:
    heard: list[AgentReply] = []
    once = SaidOnce()  # its `stop`: a failure the manager would meet too (SERVER_WIDE)
    # Letta takes a supervisor listed among its own workers too: it is asked once, as the supervisor.
    workers = [a for a in target.agents if a.id != manager.id]
    # Every worker's send is made already: each is heard out (none cut off, to be asked again), only the manager
    # is spared.
    async for events in together(runner, workers, turn, transcript, journal, once):
        for event in events:
            if isinstance(event, AgentReply):
                heard.append(event)
            yield event
    if (note := once.note([manager.name], len(workers))) is not None:
        yield note
        return
    def frame(unseen: list[AgentReply]) -> str:
        this_turn = {(r.agent_id, r.text) for r in heard}
        return supervisor_message([r for r in unseen if (r.agent_id, r.text) not in this_turn], heard, turn.text)

    for event in await runner.step(manager, turn, transcript, journal, frame=frame):
        yield event


async def dynamic(
    runner: Step, target: Target, manager: AgentRef, turn: TurnInput, transcript: Transcript, journal: Journal
) -> AsyncIterator[TurnEvent]:
    token = target.termination_token
    # The manager's choice is never shown in the thread, and is made on text alone, as Letta's DynamicMultiAgent
    # asks it: the person's files go to the members who answer.
    choosing = dataclasses.replace(turn, drafts=None, images=())
    said: list[AgentReply] = []
    sends: dict[str, int] = {}
    news: dict[str, bool] = {}  # member id -> another member replied since its last send of this turn
    failed: set[str] = set()  # members whose own send failed this turn: asking again would fail again
    last: AgentRef | None = None
    for round_ in range(target.max_turns or len(target.agents)):
        # As in Letta's DynamicMultiAgent, the member who just spoke is not offered the floor again; nor one that
        # failed, nor one with nothing new since it spoke (it would only be sent the person's words again).
        options = [
            a for a in target.agents
            if (last is None or a.id != last.id) and a.id not in failed and news.get(a.id, True) and a.id != manager.id
        ]
        if not options:
            return
        so_far, names, just = tuple(said), [a.name for a in options], last.name if last else None

        def frame(
            _: list[AgentReply], so_far: tuple[AgentReply, ...] = so_far, names: list[str] = names,
            just: str | None = just,
        ) -> str:
            return dynamic_prompt(turn.text, so_far, names, token, just)

        events = await runner.step(manager, choosing, transcript, journal, f"choose:{round_}", frame)
        failures = [e for e in events if isinstance(e, AgentFailure)]
        if failures:
            for failure in failures:
                yield failure
            return
        answer = "\n".join(e.text for e in events if isinstance(e, AgentReply))
        if token and token in answer:
            return
        speaker = chosen(answer, options)
        if speaker is None:
            if not said:
                yield AgentFailure(
                    manager.name,
                    NO_SPEAKER.format(manager=manager.name),
                    "no_speaker",
                    manager.id,
                    step=f"choose:{round_}",
                )
            return
        count = sends.get(speaker.id, 0) + 1
        sends[speaker.id] = count
        key = speaker.id if count == 1 else f"{speaker.id}#{count}"
        spoken = await speak(runner, speaker, turn, transcript, journal, key)
        news[speaker.id] = False
        if any(isinstance(e, AgentReply) for e in spoken):
            last = speaker  # the manager is told who just spoke: one whose send failed said nothing
            news.update({other: True for other in news if other != speaker.id})
        elif any(isinstance(e, AgentFailure) for e in spoken):
            failed.add(speaker.id)
        for event in spoken:
            if isinstance(event, AgentReply):
                said.append(event)
            yield event
        if any(isinstance(e, AgentFailure) and e.kind in SERVER_WIDE for e in spoken):
            return  # the next speaker would meet it too; one member's own failure leaves the others to answer
        if token and any(isinstance(e, AgentReply) and token in e.text for e in spoken):
            return


def with_max_turns(target: Target, default: int | None) -> Target:
    """`target` with LETTA_MAX_TURNS (`default`) where it counts sends and sets no count of its own: a Letta
    group whose record has none, or a bridge-defined round robin or dynamic group connected without --max-turns.
    A plain list of agents is asked once each, whatever the setting."""
    if default is None or target.max_turns is not None:
        return target
    if target.kind == "group" or target.manager_type in ("round_robin", "dynamic"):
        return dataclasses.replace(target, max_turns=default)
    return target


def play(
    runner: Step, target: Target, turn: TurnInput, transcript: Transcript, journal: Journal
) -> AsyncIterator[TurnEvent]:
    """The target's pattern, each send made by `runner.step`: a Letta group's or a bridge-defined group's."""
    manager = target.manager
    if manager is None and target.manager_type in MANAGED:
        return _unmanaged(target)
    if manager is not None and target.manager_type == "supervisor":
        return supervise(runner, target, manager, turn, transcript, journal)
    if manager is not None and target.manager_type == "dynamic":
        return dynamic(runner, target, manager, turn, transcript, journal)
    if manager is not None and target.manager_type == "sleeptime":
        return _in_order(runner, (manager,), turn, transcript, journal)
    if target.broadcast:
        return _broadcast(runner, target.agents, turn, transcript, journal)
    return _in_order(runner, speaking_order(target), turn, transcript, journal)


async def _unmanaged(target: Target) -> AsyncIterator[TurnEvent]:
    """A managed group without its manager: nobody is asked in its place."""
    yield AgentFailure(None, NO_MANAGER.format(kind=target.manager_type), "no_manager", step="manager")


async def _broadcast(
    runner: Step, agents: Sequence[AgentRef], turn: TurnInput, transcript: Transcript, journal: Journal
) -> AsyncIterator[TurnEvent]:
    once = SaidOnce()
    async for events in together(runner, agents, turn, transcript, journal, once):
        for event in events:
            yield event
    if (note := once.note((), len(agents))) is not None:
        yield note


async def _in_order(
    runner: Step, agents: Sequence[AgentRef], turn: TurnInput, transcript: Transcript, journal: Journal
) -> AsyncIterator[TurnEvent]:
    async def ask(agent: AgentRef, key: str) -> list[TurnEvent]:
        return await speak(runner, agent, turn, transcript, journal, key)

    async for event in in_order(agents, ask):
        yield event


async def in_order(
    agents: Sequence[AgentRef], ask: Callable[[AgentRef, str], Awaitable[list[TurnEvent]]]
) -> AsyncIterator[TurnEvent]:
    """Each agent asked in turn (`ask(agent, step key)`; an agent's later sends are keyed `<id>#2`, ...); a
    failure the next agents would meet too (SERVER_WIDE) ends the turn, and says who was not asked."""
    sends: dict[str, int] = {}
    news: dict[str, bool] = {}  # agent id -> another agent replied since its last send of this turn
    failed: set[str] = set()  # its send failed: a later one would lack the person's words, so it is not made
    for position, agent in enumerate(agents):
        if agent.id in sends and not news[agent.id]:
            continue  # asked again with nothing new (one agent; the others failed): only the person's words again
        if agent.id in failed:
            continue  # as the dynamic pattern offers it no floor: its failure is said in the thread already
        sends[agent.id] = sends.get(agent.id, 0) + 1
        key = agent.id if sends[agent.id] == 1 else f"{agent.id}#{sends[agent.id]}"
        events = await ask(agent, key)
        news[agent.id] = False
        if any(isinstance(e, AgentReply) for e in events):
            news.update({other: True for other in news if other != agent.id})
        elif any(isinstance(e, AgentFailure) for e in events):
            failed.add(agent.id)
        for event in events:
            yield event
        stop = next((e for e in events if isinstance(e, AgentFailure) and e.kind in SERVER_WIDE), None)
        if stop is not None:
            rest = list(dict.fromkeys(a.name for a in agents[position + 1 :] if a.id not in sends))
            if rest:
                yield not_asked(rest, stop, position)
            return


def speaking_order(target: Target) -> tuple[AgentRef, ...]:
    """Round robin: the members in order, `max_turns` sends in all (default: one each), wrapping around."""
    agents = target.agents
    if not target.max_turns or not agents or target.manager_type not in (None, "round_robin"):
        return agents
    return tuple(agents[i % len(agents)] for i in range(target.max_turns))
