"""Pure decisions: an incoming Slack event becomes a `Turn` to run, or `Ignored` with a typed reason."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Literal

from bridge.domain import Turn
from bridge.slack.files import shared_files
from bridge.slack.links import as_words


class Reason(StrEnum):
    FROM_BOT = "from_bot"
    SUBTYPE = "subtype"
    NO_USER = "no_user"
    NO_CHANNEL = "no_channel"
    EMPTY = "empty"
    NOT_A_MENTION = "not_a_mention"
    MALFORMED = "malformed"
    EDITED = "edited"


@dataclass(frozen=True)
class Ignored:
    reason: Reason
    detail: str = ""


Decision = Turn | Ignored
# A person's edit: workspace, channel, ts, new words, the ids of the files the message still has (None when the
# event does not say: no `files` key, and the stored files stay), and when it was made (`edited.ts`; "" when Slack
# did not say), since Slack may deliver an older edit after a newer one.
Edit = tuple[str, str, str, str, tuple[str, ...] | None, str]

_TS = re.compile(r"\d{1,12}\.\d{1,9}")
# A person's own words, though Slack gives the message a subtype: a file share (its files go with the turn), and
# a thread reply also sent to the channel.
SPOKEN_SUBTYPES = frozenset({"file_share", "thread_broadcast"})
# Invisible characters (zero-width spaces and joiners, the BOM, directional marks): a message of only these
# says nothing.
INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\u202a-\u202e\ufeff\u00ad]")
# A message that opens with a person's or a user group's mention: said to them.
ADDRESSED = re.compile(r"\s*<(?:@([UW][A-Z0-9]+)|!subteam\^[A-Z0-9]+)[|>]")
MENTIONS_SOMEONE = re.compile(r"<(?:@[UW][A-Z0-9]+|!subteam\^[A-Z0-9]+)[|>]")  # a person or a user group, anywhere


def clean_text(text: str, bot_user_id: str | None) -> str:
    """Strip only the bot's own mention (other people's mentions stay), undo Slack's escaping and read its links as
    words (`links.as_words`; people and channels are named later, by `readable`). The message's lines and
    indentation stay (pasted code, a trace, a list; `quoting.after_prefix` keeps them the person's): only each
    line's trailing whitespace and the blank lines around the message go, and a one-line message's spaces around
    it. A mention opening a line takes its spaces with it, not the next line's indentation."""
    if bot_user_id:
        mention = rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>"
        text = re.sub(rf"[ \t]*{mention}[ \t]*", " ", re.sub(rf"(?m)^[ \t]*{mention}[ \t]*", "", text))
    if not INVISIBLE.sub("", text).strip():
        return ""
    lines = [line.rstrip() for line in text.splitlines()]
    while not lines[0]:
        lines.pop(0)
    while not lines[-1]:
        lines.pop()
    return as_words(lines[0].strip() if len(lines) == 1 else "\n".join(lines))


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def installed_team(body: dict[str, Any]) -> str:
    """The workspace whose installation the event came through, as Bolt's `context.team_id` reads it (bindings
    are keyed by it): in a Slack Connect channel the envelope's `team_id` is the workspace the event happened
    in, maybe another organisation's, so `authorizations[0].team_id` comes first."""
    authorizations = body.get("authorizations")
    if isinstance(authorizations, list) and authorizations and isinstance(authorizations[0], dict):
        installed = _str(authorizations[0].get("team_id"))
        if installed:
            return installed
    event = body.get("event")
    return _str(body.get("team_id")) or (_str(event.get("team")) if isinstance(event, dict) else "")


def decide_mention(body: dict[str, Any], bot_user_id: str | None, bot_id: str | None = None) -> Decision:
    event = body.get("event")
    if not isinstance(event, dict):
        return Ignored(Reason.MALFORMED, "no event")
    if event.get("bot_id") or (bot_id and event.get("bot_id") == bot_id):
        return Ignored(Reason.FROM_BOT)
    if event.get("subtype") and event.get("subtype") not in SPOKEN_SUBTYPES:
        return Ignored(Reason.SUBTYPE, _str(event.get("subtype")))
    if event.get("edited"):  # sent again for an edited mention, or an edit that adds one: no new question
        return Ignored(Reason.EDITED)
    return _human_turn(body, event, bot_user_id)


def _human_turn(body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None) -> Decision:
    """A person's message (no bot, no subtype) as a Turn, once its user, channel, ts and text check out."""
    user = _str(event.get("user"))
    if not user:
        return Ignored(Reason.NO_USER)
    if bot_user_id and user == bot_user_id:
        return Ignored(Reason.FROM_BOT, "self")
    channel = _str(event.get("channel"))
    if not channel:
        return Ignored(Reason.NO_CHANNEL)
    ts = _str(event.get("ts"))
    if not _TS.fullmatch(ts):
        return Ignored(Reason.MALFORMED, "bad ts")
    thread_ts = _str(event.get("thread_ts"))
    if thread_ts and not _TS.fullmatch(thread_ts):
        return Ignored(Reason.MALFORMED, "bad thread_ts")
    text = clean_text(_str(event.get("text")), bot_user_id)
    files = shared_files(event)
    if not text and not files:
        return Ignored(Reason.EMPTY)
    return Turn(
        team_id=installed_team(body),
        channel_id=channel,
        message_ts=ts,
        thread_ts=thread_ts or ts,
        user_id=user,
        text=text,
        event_id=_str(body.get("event_id")),
        files=files,
    )


def deleted_message(body: dict[str, Any]) -> tuple[str, str, str] | None:
    """A message deleted in Slack: its workspace, channel and ts, so that its turn, if it still waits, is
    withdrawn. A message without replies goes as `message_deleted` (`deleted_ts`); one with replies (a mention
    the bridge answered with a queue notice in its thread) stays as a placeholder, "This message was deleted.",
    which Slack sends as `message_changed` whose message is a `tombstone` (matterbridge#600, slack-edge#10)."""
    event = body.get("event")
    if not isinstance(event, dict):
        return None
    channel, ts = _str(event.get("channel")), _str(event.get("deleted_ts"))
    if event.get("subtype") == "message_changed":
        message = event.get("message")
        if not isinstance(message, dict) or message.get("subtype") != "tombstone":
            return None
        ts = _str(message.get("ts"))
    elif event.get("subtype") != "message_deleted":
        return None
    return (installed_team(body), channel, ts) if channel and _TS.fullmatch(ts) else None


def edited_message(body: dict[str, Any], bot_user_id: str | None) -> Edit | None:
    """A person's message edited: the app_mention Slack sends again for it (`edited` set), or `message_changed`
    (the message as it is now in `message`). Its workspace, channel, ts, new words (the bot's mention stripped;
    "" where only its files are left, as a files-only mention has), the ids of the files it still has and the
    edit's time, so that its turn, if it still waits, answers them and sends no file taken out (unless it took a
    newer edit); None for a bot's message, or an edit that left nothing to answer (`edited_to_nothing`)."""
    return edit_of(body, bot_user_id)[0]


def edited_to_nothing(body: dict[str, Any], bot_user_id: str | None) -> tuple[str, str, str] | None:
    """A person's message edited down to no words and no files (only the bot's mention, say): its workspace,
    channel and ts, so that its waiting turn is taken back, as a fresh mention of nothing would be ignored,
    instead of being sent with the words the person took out."""
    emptied = edit_of(body, bot_user_id)[1]
    return emptied[:3] if emptied is not None else None


def edit_of(body: dict[str, Any], bot_user_id: str | None) -> tuple[Edit | None, Edit | None]:
    """`edited_message` and the edit `edited_to_nothing` reads (with its time, so that a newer edit the turn took
    stays) of one event, read once (at most one is not None)."""
    edit = _edit(body, bot_user_id)
    if edit is None:
        return None, None
    # Words left, or an edit that does not say which files it has (they stay: the relay takes the turn back only
    # if it has none), is an edit; no words and a files list with none is nothing left to answer.
    return (edit, None) if edit[3] or edit[4] is None or edit[4] else (None, edit)


def edit_in_thread(body: dict[str, Any], bot_user_id: str | None) -> tuple[str, bool] | None:
    """The thread of an edited reply (`edit_of`), where a stop word may stop rather than ask, and whether the reply
    mentions the bot now (a stop without one stops only where something else of the thread runs or waits, as a
    new reply's does); None for a message at the top level."""
    message = _edited(body.get("event"))
    thread_ts = _str(message.get("thread_ts")) if message is not None else ""
    if message is None or not thread_ts or thread_ts == _str(message.get("ts")):
        return None
    return thread_ts, _mentions(_str(message.get("text")), bot_user_id)


def edit_asks(body: dict[str, Any], bot_user_id: str | None) -> str | None:
    """Whom the edited message (`edit_of`) asks, for the relay to remember an edit that found no turn only where
    the bot would answer the message: "" where it mentions the bot now or did before the edit, or in a direct
    message; a thread reply's thread otherwise (a follow-up, answered only in the bot's threads); None for any
    other channel message."""
    event = body.get("event")
    message = _edited(event)
    if not isinstance(event, dict) or message is None:
        return None
    before = event.get("previous_message")
    was = _str(before.get("text")) if isinstance(before, dict) else ""
    if event.get("channel_type") == "im" or _mentions(_str(message.get("text")), bot_user_id):
        return ""
    if _mentions(was, bot_user_id):
        return ""
    thread_ts = _str(message.get("thread_ts"))
    return thread_ts if thread_ts and thread_ts != _str(message.get("ts")) else None


def _edited(event: Any) -> dict[str, Any] | None:
    """The message as an edit event has it now: the app_mention sent again, or message_changed's `message`."""
    if not isinstance(event, dict):
        return None
    message = event if event.get("type") == "app_mention" and event.get("edited") else None
    if event.get("type") == "message" and event.get("subtype") == "message_changed":
        message = event.get("message") if isinstance(event.get("message"), dict) else None
    return message


def _edit(body: dict[str, Any], bot_user_id: str | None) -> Edit | None:
    """A person's edit. No capture shows how Slack sends a message edited to none of its files, so a message
    without a `files` key says nothing of them (None): only a `files` list takes files out of a waiting turn."""
    event = body.get("event")
    message = _edited(event)
    if not isinstance(event, dict) or message is None or not message.get("edited") or message.get("bot_id"):
        return None  # also Slack's own changes to a message (an unfurl, a thread's reply count): no edit
    if message.get("subtype") not in (None, *SPOKEN_SUBTYPES):
        return None
    channel, ts = _str(event.get("channel")), _str(message.get("ts"))
    if not channel or not _TS.fullmatch(ts):
        return None
    text = clean_text(_str(message.get("text")), bot_user_id)
    kept = tuple(f.id for f in shared_files(message)) if isinstance(message.get("files"), list) else None
    edited = message["edited"]
    edited_ts = _str(edited.get("ts")) if isinstance(edited, dict) else ""
    return (installed_team(body), channel, ts, text, kept, edited_ts if _TS.fullmatch(edited_ts) else "")


def no_longer_addressed(
    body: dict[str, Any], bot_user_id: str | None
) -> tuple[Literal["away", "dropped", "unmentioned"], str] | None:
    """An edit that takes a message away from the bot, whose turn, while it still waits, is withdrawn as a
    deleted message's is: `away` for a thread reply that now opens with someone else's mention (and not the
    bot's), as a fresh one would be left to them, or a channel message that no longer mentions the bot and
    mentions someone else; `dropped` for a channel message that now mentions no one (its notice must not say it
    speaks to someone else); `unmentioned` for a thread reply whose mention of the bot was edited out (still a
    turn where a follow-up would be one: the relay knows). With the message's thread ("" at the top level)."""
    event = body.get("event")
    if not isinstance(event, dict) or event.get("subtype") != "message_changed" or event.get("channel_type") == "im":
        return None
    message, before = event.get("message"), event.get("previous_message")
    if not isinstance(message, dict):
        return None
    text, ts, thread_ts = _str(message.get("text")), _str(message.get("ts")), _str(message.get("thread_ts"))
    if not thread_ts or thread_ts == ts:
        if _mentions(text, bot_user_id):
            return None
        return ("away", "") if MENTIONS_SOMEONE.search(text) else ("dropped", "")
    if _addressed_elsewhere(text, bot_user_id):
        return ("away", thread_ts)
    was = _str(before.get("text")) if isinstance(before, dict) else ""
    unmentioned = _mentions(was, bot_user_id) and not _mentions(text, bot_user_id)
    return ("unmentioned", thread_ts) if unmentioned else None


def channel_moved(body: dict[str, Any]) -> tuple[str, str, str] | None:
    """A channel's id changed for good (`channel_id_changed`): its workspace, old and new ids."""
    event = body.get("event")
    if not isinstance(event, dict) or event.get("type") != "channel_id_changed":
        return None
    old, new = _str(event.get("old_channel_id")), _str(event.get("new_channel_id"))
    return (installed_team(body), old, new) if old and new and old != new else None


def decide_message(
    body: dict[str, Any],
    bot_user_id: str | None,
    bot_id: str | None = None,
    direct_messages: bool = False,
    thread_follow_ups: bool = True,
) -> Decision:
    """A plain channel message starts no turn (mentions arrive as `app_mention`), except: a person's direct
    message to the bot when `direct_messages` is on (a default target is configured), and a person's reply in
    a thread, as a follow-up that the relay runs only where the bot has already answered."""
    event = body.get("event")
    if not isinstance(event, dict):
        return Ignored(Reason.MALFORMED, "no event")
    if event.get("bot_id"):
        return Ignored(Reason.FROM_BOT)
    if event.get("subtype") and event.get("subtype") not in SPOKEN_SUBTYPES:
        return Ignored(Reason.SUBTYPE, _str(event.get("subtype")))
    if event.get("edited"):
        return Ignored(Reason.EDITED)
    if direct_messages and event.get("channel_type") == "im":
        return _human_turn(body, event, bot_user_id)
    thread_ts, ts = _str(event.get("thread_ts")), _str(event.get("ts"))
    if thread_follow_ups and thread_ts and thread_ts != ts:
        if _addressed_elsewhere(_str(event.get("text")), bot_user_id):
            return Ignored(Reason.NOT_A_MENTION, "to someone else")
        decision = _human_turn(body, event, bot_user_id)
        twin = event.get("channel_type") != "im" and _mentions(_str(event.get("text")), bot_user_id)
        if not isinstance(decision, Turn) or twin:
            # A mention's message twin is the mention (a stop word in it stops, once). A DM has no app_mention:
            # there, with direct messages off, a reply mentioning the bot stays a follow-up like any other.
            return decision
        return replace(decision, follow_up=True)
    return Ignored(Reason.NOT_A_MENTION)


def _mentions(text: str, bot_user_id: str | None) -> bool:
    return bool(bot_user_id and re.search(rf"<@{re.escape(bot_user_id)}[|>]", text))


def _addressed_elsewhere(text: str, bot_user_id: str | None) -> bool:
    """A thread reply that opens with another person's or a user group's mention, and never mentions the bot:
    said to them (a colleague asked in the bot's thread), not to the agents."""
    opening = ADDRESSED.match(text)
    if opening is None or opening.group(1) == bot_user_id:
        return False
    return not _mentions(text, bot_user_id)
