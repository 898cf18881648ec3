"""Pure: the approval card an agent's tool call gets in its Slack thread, the card once decided and what became of a
request, the modal that asks a denial's reason, who may decide, and reading a press or a submitted reason back.

The arguments are the model's words: pretty-printed when they are JSON, clipped, escaped (no `<!channel>`, no
mention can be formed) and shown in a code block that they cannot close. Each button's value is the approval's
row id in the store, so a press is decided without reading anything back from Slack.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from bridge.slack.markdown import escape_within
from bridge.slack.render import escape
from bridge.store.approvals import Approval

APPROVE_ACTION = "letta_approve_tool"
DENY_ACTION = "letta_deny_tool"
DENY_VIEW = "letta_deny_reason"
REASON_BLOCK, REASON_INPUT = "reason", "reason_input"
ARGUMENT_CHARS = 1500  # of the pretty-printed arguments shown on a card, escaped (a section holds 3,000)
NAME_CHARS = 200  # of the agent's and the tool's names on a card, escaped
REASON_CHARS = 300
ApproveBy = Literal["asker", "configurers", "channel", "users"]
Verdict = Literal["approved", "denied", "timed_out", "stale", "ended"]
CLOSED = "Letta no longer waits for a decision on this tool call, so nothing was sent."
ALREADY = "Already decided: {line}"
STOPPED = "the turn was stopped"
UNPOSTED = "The approval card could not be posted in Slack, so nobody could be asked."
UNPOSTED_LINE = "denied at once, as an approval card of this request could not be posted in Slack"


def unposted_notice(agent: str, tools: list[str], error: str, unconfirmed: bool = False) -> str:
    """What the thread is told when Slack would not take a request's card: its calls were denied, and why. Plain
    text: a notice is escaped as it is posted."""
    names = ", ".join("`" + t[:NAME_CHARS].replace("`", "'") + "`" for t in tools)
    calls = "tool call {} was" if len(tools) == 1 else "tool calls {} were"
    if unconfirmed:  # it may be in the thread all the same: its buttons no longer decide anything
        return (f"{agent[:NAME_CHARS]}'s {calls.format(names)} denied because Slack did not confirm the approval card"
                f" was posted ({error}), so nobody could be asked; a card for it above no longer decides anything.")
    return (f"{agent[:NAME_CHARS]}'s {calls.format(names)} denied because Slack would not post the approval card"
            f" ({error}), so nobody could be asked.")


def left_pending_notice(
    agent: str, tools: list[str], call_ids: list[str], rounds: int, conversation: str | None
) -> str:
    """What the thread is told when an agent kept asking for tools after a stop's denials, past the bound: what
    still waits on Letta, what that blocks (the thread's `conversation`, or with None the agent itself, everywhere)
    and where an operator sends the denial. Plain text: a notice is escaped as it is posted."""
    name = agent[:NAME_CHARS]
    names = ", ".join("`" + t[:NAME_CHARS].replace("`", "'") + "`" for t in tools)
    ids = ", ".join("`" + i.replace("`", "'") + "`" for i in call_ids)
    one = len(tools) == 1
    calls = f"tool call {names} waits" if one else f"tool calls {names} wait"
    it, them, ided = ("it is", "it", "id") if one else ("they are", "them", "ids")
    blocked, where = _blocked(name, conversation)
    return (f"After the stop, {name} asked for another tool each time its request was denied ({rounds} times), so the"
            f" bridge stopped denying: its {calls} on Letta, which {blocked} until {it} decided. An operator can"
            f" deny {them} with an approval message to {where} in Letta (tool call {ided}"
            f" {ids}).")


def unknown_pending_notice(
    agent: str, decided_ids: list[str], why: str, conversation: str | None, going: float | None = None
) -> str:
    """What the thread is told when the end of a stop could not read what became of the decisions on `decided_ids`
    (`why`): one of them, or a request the agent made after it, may still wait on Letta; what that would block and
    how an operator finds and denies it. `going`: only a run of the agent's was still going after that many seconds,
    history showing the decided requests answered, so just a request asked after them may wait, and they are not
    blamed. Plain text: a notice is
    escaped as it is posted."""
    name = agent[:NAME_CHARS]
    ids = ", ".join("`" + i.replace("`", "'") + "`" for i in decided_ids)
    ided, was = ("id", "was") if len(decided_ids) == 1 else ("ids", "were")
    blocked, where = _blocked(name, conversation)
    how = (f" which {blocked} until it is decided. An operator can find it in {where}'s history in Letta (an approval"
           f" request with no tool return) and deny it with an approval message to {where}.")
    if going is not None:
        return (f"After the stop, a run of {name}'s was still going after {going:g} seconds, so the bridge could not"
                f" tell whether {name} asked for another tool after tool call {ided} {ids} {was} decided: such a"
                f" request may wait on Letta,{how}")
    return (f"After the stop, the bridge could not tell whether {name} still waits for a tool call to be decided"
            f" ({why}): tool call {ided} {ids}, decided before, or one {name} asked for after it, may wait on Letta,"
            f"{how}")


def _blocked(name: str, conversation: str | None) -> tuple[str, str]:
    """What a request left pending blocks (the thread's `conversation`, or with None the agent itself, everywhere),
    and where its denial goes."""
    if conversation is None:
        return f"takes no new message for {name}, in any channel or thread that uses {name},", "the agent"
    shown = conversation.replace("`", "'")
    return f"takes no new message in this thread's conversation `{shown}`", "that conversation"


def shown_arguments(arguments: str) -> str:
    """The arguments pretty-printed (JSON), clipped to ARGUMENT_CHARS, escaped, in a code block they cannot end."""
    try:
        text = json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except ValueError:
        text = arguments
    text = escape_within(text, ARGUMENT_CHARS)  # clipped as Slack counts: escaped
    # No run of backticks may join into a fence, nor join the block's own at either end.
    text = re.sub(r"`{2,}", lambda m: "\u200b".join(m.group()), text)
    text = ("\u200b" if text.startswith("`") else "") + text + ("\u200b" if text.endswith("`") else "")
    return f"```{text or ' '}```"


def _asks(agent: str, tool: str, arguments: str) -> dict[str, Any]:
    name = escape_within(tool, NAME_CHARS).replace("`", "'")
    said = f"*{escape_within(agent, NAME_CHARS)}* wants to run `{name}`:\n{shown_arguments(arguments)}"
    return {"type": "section", "block_id": "letta_tool", "text": {"type": "mrkdwn", "text": said}}


def card_text(agent: str, tool: str, approval_id: int) -> str:
    """The notification text (and the fallback where blocks are not shown); the id keeps two cards for the same
    tool apart (a post is looked for by its text after a restart)."""
    return f"{escape(agent)} asks to run the tool {escape(tool)} (approval #{approval_id}): approve or deny it here."


def card_blocks(approval_id: int, agent: str, tool: str, arguments: str) -> tuple[dict[str, Any], ...]:
    """The card waiting for a decision: the tool, its arguments, Approve and Deny."""
    value = str(approval_id)
    return (
        _asks(agent, tool, arguments),
        {
            "type": "actions",
            "block_id": f"letta_approval_{approval_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE_ACTION,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": value,
                },
                {
                    "type": "button",
                    "action_id": DENY_ACTION,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Deny"},
                    "value": value,
                },
            ],
        },
    )


def _when(at: float) -> str:
    """A time each reader sees in their own time zone (Slack's date token), UTC as the fallback."""
    fallback = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at)}^{{date_short_pretty}} at {{time}}|{fallback}>"


def verdict_line(verdict: Verdict, by: str, at: float, reason: str = "") -> str:
    because = f": {escape(reason)}" if reason else ""
    match verdict:
        case "approved":
            return f":white_check_mark: Approved by <@{escape(by)}> {_when(at)}"
        case "denied":
            return f":no_entry_sign: Denied by <@{escape(by)}> {_when(at)}{because}"
        case "timed_out":
            return f":hourglass: Nobody decided in time, so it was denied {_when(at)}"
        case "stale":
            return f":warning: Letta no longer waited for this decision {_when(at)}{because}"
    return f":octagonal_sign: Not used {_when(at)}{because}"


def card_lines(row: Approval, refused: str | None = None) -> list[str]:
    """What became of a request, for its card: the decision, then (when Letta refused it) why it was not used."""
    return [verdict_line(*verdict) for verdict in _verdicts(row, refused)]


def already(row: Approval) -> str:
    """What to tell someone who pressed on a request decided or ended before: its card's first line."""
    verdicts = _verdicts(row)
    return ALREADY.format(line=verdict_line(*verdicts[0])) if verdicts else CLOSED


def _verdicts(row: Approval, refused: str | None = None) -> list[tuple[Verdict, str, float, str]]:
    verdicts: list[tuple[Verdict, str, float, str]] = []
    if row.decided_at is not None:
        if not row.decided_by and row.reason == UNPOSTED:  # denied as soon as asked: no card could be posted
            verdicts.append(("ended", "", row.decided_at, UNPOSTED_LINE))
        elif not row.decided_by:
            verdicts.append(("timed_out", "", row.decided_at, ""))
        else:
            verdict: Verdict = "approved" if row.approve else "denied"
            verdicts.append((verdict, row.decided_by, row.decided_at, "" if row.approve else row.reason))
    if refused is not None:
        verdicts.append(("stale", "", time.time(), refused))
    elif row.outcome == "stopped":
        verdicts.append(("ended", "", time.time(), STOPPED))
    return verdicts


def decided_blocks(agent: str, tool: str, arguments: str, lines: list[str]) -> tuple[dict[str, Any], ...]:
    """The card once decided: the same request, what became of it, no buttons."""
    context = {"type": "context", "elements": [{"type": "mrkdwn", "text": line[:3000]} for line in lines[:10]]}
    return (_asks(agent, tool, arguments), context)


def deny_view(approval_id: int, tool: str) -> dict[str, Any]:
    """The modal a Deny opens: a short reason, which the agent is told."""
    return {
        "type": "modal",
        "callback_id": DENY_VIEW,
        "private_metadata": str(approval_id),
        "title": {"type": "plain_text", "text": "Deny the tool call"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": f"Why not run {tool}?"[:2000]},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "max_length": REASON_CHARS,
                    "placeholder": {"type": "plain_text", "text": "The agent is told this reason."},
                },
            }
        ],
    }


@dataclass(frozen=True)
class Reason:
    approval_id: int
    text: str


def read_press(value: str) -> int | None:
    """The approval a button's value names; None when it is not one of ours."""
    return int(value) if value.isdigit() else None


def read_reason(view: dict[str, Any]) -> Reason | None:
    """The approval and the reason from a submitted Deny modal; None when it is not one of ours."""
    approval = read_press(str(view.get("private_metadata") or ""))
    if approval is None:
        return None
    values = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
    text = str((values.get(REASON_INPUT) or {}).get("value") or "")
    return Reason(approval, " ".join(text.split())[:REASON_CHARS])


def may_decide(by: ApproveBy, user: str, asker: str, users: tuple[str, ...]) -> bool | None:
    """Whether the member may decide; None when only Slack can say (configurers: ask `may_configure`)."""
    if by == "channel":
        return True
    if by == "users":
        return user in users
    if by == "configurers":
        return None
    return user == asker


def who_may_decide(by: ApproveBy, asker: str, users: tuple[str, ...]) -> str:
    """The rule in words, for the ephemeral refusal."""
    if by == "users":
        return "the people this bridge lists for approvals (" + ", ".join(f"<@{u}>" for u in users) + ")"
    if by == "configurers":
        return "the people who may configure this channel"
    return f"<@{asker}>, who asked"
