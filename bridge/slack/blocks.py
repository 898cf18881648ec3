"""Pure: what the /letta command says, as Slack messages (mrkdwn text; the connect menu is `slack/menu.py`),
escaped and within Slack's limits. Everything that came from Letta (descriptions, names) is escaped before it is
shown."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bridge.domain import Binding, Catalog, HistoryEntry, Target
from bridge.pattern_words import IN_ORDER, bridge_runs, manager_role, members_heading, turns_in_all
from bridge.slack.permissions import GROUP_DM_CREATOR
from bridge.slack.render import escape

if TYPE_CHECKING:
    from bridge.configure import Connected, Status

GROUP_ID = "&lt;group id&gt;"
AGENT_ID = "&lt;agent id&gt;"
CUT = "_The server has more than the bridge lists at once; these are the first._"
TEXT_BUDGET = 12_000  # Slack refuses block-heavy or very long ephemeral messages well before 40,000
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_SERVER_RUNS = "the Letta server runs the group (one group send a turn)"


@dataclass(frozen=True)
class Message:
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        """Keyword arguments for Bolt's `ack()` / `respond()`."""
        return {"text": self.text, "blocks": self.blocks} if self.blocks else {"text": self.text}


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sentence(text: str) -> str:
    """A capital first letter, unless the first word is an id or name the person typed (`agent-0000…`, `group_x`):
    that is shown as typed, so it can be copied."""
    first = text.split(" ", 1)[0].rstrip(",.:;")
    return text if not first.isalpha() else text[:1].upper() + text[1:]


def actor(who: str) -> str:
    if _USER_ID.fullmatch(who):
        return f"<@{who}>"
    return {"cli": "the command line", "bridge": "the bridge", "": "someone"}.get(who, escape(who))


def when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def names(target: Target, limit: int | None = None) -> str:
    """The members' names, escaped (after clipping to `limit`, so that no entity is cut or escaped twice)."""
    joined = ", ".join(a.name for a in target.agents)
    return escape(clip(joined, limit) if limit else joined)


def title(target: Target) -> str:
    """`*Research crew* (group-…)` or `agents`: what a channel is bound to, in one phrase."""
    if target.kind == "group":
        label = escape(target.description) if target.description else "a group"
        return f"*{label}* (`{target.group_id}`)"
    return "a list of agents"


def pattern(target: Target) -> str:
    """How the target answers: its pattern with its manager (a sleeptime group's main agent), and a bridge-defined
    group's limits ("" for a plain list of agents)."""
    if target.kind == "agents" and not target.manager_type:
        return ""
    parts = [f"`{escape(target.manager_type or 'unknown')}`"]
    if target.manager is not None:
        parts.append(f"{manager_role(target)} {escape(target.manager.name)} (`{target.manager.id}`)")
    if target.kind == "group":
        return ", ".join(parts)
    if target.max_turns is not None:
        parts.append(f"max turns {target.max_turns}")
    if target.termination_token:
        parts.append(f"termination token {escape(target.termination_token)}")
    return ", ".join(parts)


def describe(target: Target) -> str:
    lines = [title(target)]
    if pattern(target):
        lines.append(f"Pattern: {pattern(target)}")
    agents = ", ".join(f"{escape(a.name)} (`{a.id}`)" for a in target.agents) or "none left (deleted on Letta)"
    lines.append(f"{_sentence(members_heading(target))}: {agents}")
    return "\n".join(lines)


def usage(command: str, problem: str = "") -> Message:
    lines = [
        f"{problem} Here is what I understand:" if problem else "*Connect this channel to a Letta group:*",
        f"`{command} connect group-&lt;uuid&gt;`: connect to a group (`{command} connect` alone shows a menu)",
        f"`{command} connect agent-&lt;uuid&gt; agent-&lt;uuid&gt; …`: connect to agents, in speaking order",
        f"`{command} connect agent-… agent-… pattern=supervisor manager=agent-…`: give them a pattern "
        "(`round_robin`, `supervisor`, `dynamic`, `broadcast`; `max_turns=`, `token=`)",
        f"`{command} disconnect`: remove this channel's connection",
        f"`{command} status`: what this channel is connected to, who set it, and whether Letta answers",
        f"`{command} groups` / `{command} agents`: what the Letta server has",
        f"`{command} stop`: stop the agents' work in this channel (in a thread, say `stop` to me, or press Stop)",
        f"`{command} help`: this text",
        "Then mention me in the channel: every agent answers in the thread.",
    ]
    return Message("\n".join(lines))


def refused(
    rule: str,
    command: str,
    admin_unknown: str | None = None,
    creator_unknown: str | None = None,
    listing: bool = False,
    me: str = "@letta",
) -> Message:
    """The rule, and what Slack would not say about the caller (its error), so that an admin or a channel's
    creator refused only because a lookup failed is told why. `listing`: `groups` or `agents` was asked for
    (SLACK_CATALOG=configurers), which changes nothing."""
    if listing:
        lines = [f"Only {rule} may see the Letta server's groups and agents here."]
    else:
        lines = [f"Only {rule} may change what a channel is connected to, so nothing was changed."]
    if admin_unknown:
        lines.append(
            f"Slack would not tell me about your account (`{escape(admin_unknown)}`); if that "
            "persists, an operator can run `python -m bridge check`."
        )
    if creator_unknown == "channel_not_found":
        lines.append(
            "Slack would not tell me who created this channel (`channel_not_found`): in a private channel, invite "
            f"me first (`/invite {me}`)."
        )
    elif creator_unknown == GROUP_DM_CREATOR:
        lines.append(
            "Slack does not tell me who started a group direct message, so only workspace admins and owners, and "
            "the people the operator lists in SLACK_CONFIGURE_USERS, can connect one."
        )
    elif creator_unknown:
        lines.append(f"Slack would not tell me who created this channel (`{escape(creator_unknown)}`).")
    lines.append(f"`{command} status` shows how this channel is connected.")
    return Message(" ".join(lines))


def foreign_workspace() -> Message:
    return Message("This bridge serves another Slack workspace, so it reads and changes nothing for this one.")


def problem(text: str) -> Message:
    return Message(f"{sentence(text)} Nothing was changed.")


def sentence(text: str) -> str:
    """Plain words as one escaped sentence."""
    return _sentence(escape(text))


def _now(result: Connected) -> str:
    use = result.use
    return "" if use.used == use.setting else f" (now `{use.used}` {escape(use.why)})"


def connected(result: Connected) -> Message:
    b = result.binding
    if result.unchanged:
        return Message(f"This channel was connected to this already, so nothing changed: {describe(b.target)}")
    lines = [
        f"Connected this channel to {describe(b.target)}",
        f"Runner: `{result.use.setting}`{_now(result)}, {_runs(result.runner, b.target)}.",
    ]
    if result.replaced is not None:
        lines.append(f"This replaces {title(result.replaced.target)}: {names(result.replaced.target)}.")
    lines.append(f"Mention me here and {_answers(b.target)} in the thread.")
    return Message("\n".join(lines))


def _runs(runner: str, target: Target) -> str:
    return {"server": _SERVER_RUNS, "bridge": bridge_runs(target)}.get(runner, escape(runner))


def _answers(target: Target) -> str:
    if target.manager_type == "sleeptime":
        return "the main agent answers"
    if (turns := turns_in_all(target)) is not None:
        return f"the agents answer in turn, {turns} repl{'y' if turns == 1 else 'ies'} in all"
    return "the agents the manager picks answer" if target.manager_type == "dynamic" else "each agent answers"


def connect_notice(user_id: str, target: Target) -> str:
    return f"<@{user_id}> connected this channel to {escape(target.label)}"


def disconnected(previous: Binding | None, command: str) -> Message:
    if previous is None:
        return Message(f"This channel was not connected, so there was nothing to remove. `{command} status` shows it.")
    return Message(
        f"Disconnected this channel from {title(previous.target)}: {names(previous.target)}. "
        "The change is kept in the channel's history."
    )


def disconnect_notice(user_id: str, previous: Binding) -> str:
    return f"<@{user_id}> disconnected this channel from {escape(previous.target.label)}"


NOTICE_UNKNOWN = "\nSlack did not answer when I announced it in the channel: the channel may not have been told."


def notice_failed(error: str, me: str = "@letta", connected: bool = True) -> str:
    """Why the channel was not told; `me` is the bot as Slack shows it (`<@U…>`: whatever the app is called)."""
    if error in ("not_in_channel", "channel_not_found") and not connected:
        return "\nI could not announce it in the channel, since I am not in it."
    if error in ("not_in_channel", "channel_not_found"):
        return f"\nI could not announce it in the channel: invite me first (`/invite {me}`), or I won't hear mentions."
    return f"\nI could not announce it in the channel (Slack said `{escape(error)}`)."


def _history_line(entry: HistoryEntry) -> str:
    verb = {"connect": "connected to", "disconnect": "disconnected from", "runner": "runner set on"}.get(
        entry.action, escape(entry.action)
    )
    how = f" as {escape(clip(entry.pattern, 300))}" if entry.pattern else ""
    return f"• {when(entry.at)}: {actor(entry.actor)} {verb} `{escape(entry.target)}`{how} (runner {entry.runner})"


def _mark(ok: bool) -> str:
    return ":white_check_mark:" if ok else ":warning:"


def status(st: Status, command: str) -> Message:
    b = st.binding
    if b is None:
        lines = ["This channel is not connected to Letta."]
        if st.default:
            lines.append(f"Mentions here go to the default target `{escape(st.default)}`.")
        if st.ignored_dm:
            lines.append(
                "I answer direct messages only when the operator sets DEFAULT_TARGET, which is not set: connect a "
                "channel instead, and mention me there."
            )
        else:
            lines.append(f"`{command} connect` connects it.")
    else:
        t = st.shown or b.target
        heading = members_heading(t)  # said where the listed agents do not simply answer in turn
        how = (f", pattern {pattern(t)}" + ("" if heading == IN_ORDER else f"; {heading}")) if pattern(t) else ""
        lines = [
            f"This channel is connected to {title(t)}{how}: {names(t)}.",
            f"Set by {actor(b.bound_by)} on {when(b.bound_at)}. Runner: `{b.runner}`"
            + (f" (now `{st.runner}`)." if st.runner and b.runner == "auto" else "."),
        ]
    lines.append(f"Right now: {_mark(st.server.ok)} {escape(st.server.detail)}")
    if st.target is not None:
        lines.append(f"{_mark(st.target.ok)} {escape(st.target.detail)}")
    if st.feedback:
        votes = ", ".join(f"{escape(f.agent_name)} 👍 {f.up} 👎 {f.down}" for f in st.feedback)
        lines.append(f"*Feedback on replies here:* {votes}")
    if st.history:
        lines.append("*Last changes:*")
        lines.extend(_history_line(e) for e in st.history)
    return Message("\n".join(lines))


def _fit(head: list[str], items: list[str], more_hint: str) -> str:
    """As many items as fit the text budget, then how many were left out."""
    out, used = list(head), sum(len(h) + 1 for h in head)
    for index, item in enumerate(items):
        if used + len(item) + 1 > TEXT_BUDGET - 200:
            out.append(f"…and {len(items) - index} more. {more_hint}")
            break
        out.append(item)
        used += len(item) + 1
    return "\n".join(out)


def led_by(target: Target) -> str:
    """The agent a group's answers start from, as the connect answer names it ("main agent sleepy", "manager
    boss"), unescaped; "" without one."""
    return f"{manager_role(target)} {target.manager.name}" if target.manager is not None else ""


def _group_how(t: Target) -> str:
    """A listed group's pattern and members, with its manager and what the members do where it has one."""
    head = f"pattern `{escape(t.manager_type or '?')}`"
    if t.manager is None:
        return f"{head}: {names(t, 300)}"
    return f"{head}, {escape(clip(led_by(t), 150))}; {members_heading(t)}: {names(t, 300)}"


def _group_line(t: Target) -> str:
    desc = escape(clip(t.description, 150)) if t.description else "_(no description)_"
    return f"• *{desc}* `{t.group_id}`, {_group_how(t)}"


def groups_list(catalog: Catalog, url: str, command: str, details: bool = True) -> Message:
    """Every group: its description, id, pattern, manager and members; without `details` (a member who may not
    configure, SLACK_CATALOG=names) only its pattern and members' names."""
    if catalog.groups is None:
        return Message(
            f"The Letta server at {url} has no group routes, so channels are connected to agents, "
            f"in speaking order: `{command} agents` lists them."
        )
    if not catalog.groups:
        return Message(f"The Letta server at {url} has no groups yet. `{command} agents` lists its agents.")
    cut = [] if catalog.groups_complete else [CUT]
    if not details:
        head = [f"*Groups on {url}* (ids and descriptions are shown to those who may configure):", *cut]
        items = [f"• {_group_how(g)}" for g in catalog.groups]
        return Message(_fit(head, items, ""))
    head = [f"*Groups on {url}* (connect one with `{command} connect {GROUP_ID}`):", *cut]
    items = [_group_line(g) for g in catalog.groups]
    return Message(_fit(head, items, f"`{command} connect {GROUP_ID}` takes any."))


def agents_list(catalog: Catalog, url: str, command: str, details: bool = True) -> Message:
    """Every agent: its name, id and description; without `details`, its name only."""
    if not catalog.agents:
        return Message(f"The Letta server at {url} has no agents yet.")
    cut = [] if catalog.agents_complete else [CUT]
    if not details:
        head = [f"*Agents on {url}* (ids and descriptions are shown to those who may configure):", *cut]
        return Message(_fit(head, [f"• *{escape(a.name)}*" for a in catalog.agents], ""))
    head = [f"*Agents on {url}* (connect some with `{command} connect {AGENT_ID} {AGENT_ID} …`):", *cut]
    items = [
        f"• *{escape(a.name)}* `{a.id}`" + (f": {escape(clip(a.description, 150))}" if a.description else "")
        for a in catalog.agents
    ]
    return Message(_fit(head, items, f"`{command} connect {AGENT_ID} …` takes any."))
