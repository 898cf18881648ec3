from __future__ import annotations

import copy
from typing import Any

from slack_bolt.request.internals import extract_team_id

from bridge.domain import Turn
from bridge.slack.decide import (
    Ignored,
    Reason,
    channel_moved,
    clean_text,
    decide_mention,
    decide_message,
    deleted_message,
    edited_message,
    edited_to_nothing,
)
from bridge.slack.sessions import session_title
from tests.reference import SLACK, load

BOT = "U0BOTABCD"


def _fixture(name: str) -> dict[str, Any]:
    return load(SLACK / "events" / name)


def test_mention_becomes_a_turn_with_the_bot_mention_stripped_and_unescaped() -> None:
    decision = decide_mention(_fixture("app_mention.json"), BOT)
    assert decision == Turn(
        team_id="T0123ABCD",
        channel_id="C0123ABCD",
        message_ts="1764064800.123456",
        thread_ts="1764064800.123456",
        user_id="U0123ABCD",
        text="what changed in the last deploy? <prod> & staging",
        event_id="Ev0A1B2C3D4E",
    )


def test_mention_inside_a_thread_answers_in_the_root_thread() -> None:
    decision = decide_mention(_fixture("app_mention_in_thread.json"), BOT)
    assert isinstance(decision, Turn)
    event = _fixture("app_mention_in_thread.json")["event"]
    assert decision.thread_ts == event["thread_ts"] != decision.message_ts


def test_only_the_bots_own_mention_is_stripped() -> None:
    assert clean_text("<@U0BOTABCD> ask <@U0456EFGH> &amp;lt;", BOT) == "ask <@U0456EFGH> &lt;"


def test_bot_posts_edits_and_empty_mentions_are_ignored_with_reasons() -> None:
    bot = decide_mention(_fixture("message_bot.json"), BOT)
    assert isinstance(bot, Ignored) and bot.reason == Reason.FROM_BOT
    edited = decide_mention(_fixture("message_changed.json"), BOT)
    assert isinstance(edited, Ignored)
    empty = copy.deepcopy(_fixture("app_mention.json"))
    empty["event"]["text"] = "<@U0BOTABCD>  "
    assert decide_mention(empty, BOT) == Ignored(Reason.EMPTY)
    mine = copy.deepcopy(_fixture("app_mention.json"))
    mine["event"]["user"] = BOT
    assert isinstance(decide_mention(mine, BOT), Ignored)


def test_malformed_events_are_ignored_not_crashed_on() -> None:
    for body in ({}, {"event": "x"}, {"event": {"user": "U1", "channel": "C1", "ts": "nope", "text": "hi"}}):
        assert isinstance(decide_mention(body, BOT), Ignored)
    no_channel = copy.deepcopy(_fixture("app_mention.json"))
    del no_channel["event"]["channel"]
    assert decide_mention(no_channel, BOT) == Ignored(Reason.NO_CHANNEL)


def test_plain_channel_messages_do_not_start_turns() -> None:
    top_level = copy.deepcopy(_fixture("message_in_thread.json"))
    del top_level["event"]["thread_ts"]
    assert decide_message(top_level, BOT) == Ignored(Reason.NOT_A_MENTION)


def _dm(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(_fixture("message_in_thread.json"))
    body["event"].pop("thread_ts", None)
    body["event"].pop("parent_user_id", None)
    body["event"].update(channel="D0123ABCD", channel_type="im", text="hello &lt;there&gt;")
    body["event"].update(changes)
    return body


def test_a_direct_message_starts_a_turn_only_when_dms_are_served() -> None:
    assert decide_message(_dm(), BOT) == Ignored(Reason.NOT_A_MENTION)
    turn = decide_message(_dm(), BOT, direct_messages=True)
    assert isinstance(turn, Turn)
    assert turn.channel_id == "D0123ABCD" and turn.text == "hello <there>" and turn.thread_ts == turn.message_ts


def test_direct_messages_from_bots_edits_and_channels_are_still_ignored() -> None:
    assert isinstance(decide_message(_dm(bot_id="B1"), BOT, direct_messages=True), Ignored)
    assert isinstance(decide_message(_dm(subtype="message_changed"), BOT, direct_messages=True), Ignored)
    assert isinstance(decide_message(_dm(user=BOT), BOT, direct_messages=True), Ignored)
    assert decide_message(_dm(text="  "), BOT, direct_messages=True) == Ignored(Reason.EMPTY)
    channel = decide_message(_dm(channel="C0123ABCD", channel_type="channel"), BOT, direct_messages=True)
    assert channel == Ignored(Reason.NOT_A_MENTION)


def test_a_persons_thread_reply_is_a_follow_up_candidate_unless_switched_off() -> None:
    decision = decide_message(_fixture("message_in_thread.json"), BOT)
    assert isinstance(decision, Turn) and decision.follow_up
    assert decision.thread_ts == "1764064800.123456" and decision.text == "thanks, also check the migration logs"
    assert isinstance(decide_message(_fixture("message_in_thread.json"), BOT, thread_follow_ups=False), Ignored)
    for name in ("message_bot.json", "message_bot_profile.json", "message_changed.json"):
        assert isinstance(decide_message(_fixture(name), BOT), Ignored)


def _group_dm(**changes: Any) -> dict[str, Any]:
    """A person's thread reply in a group DM (several people and the bot), as message.mpim delivers it."""
    body = _fixture("message_mpim_in_thread.json")
    body["event"].update(changes)
    return body


def test_a_group_dm_is_served_like_a_private_channel() -> None:
    """A reply in the bot's thread is a follow-up; a message outside a thread, without a mention, is not (it is
    no DM to the bot, so no default target takes it); a mention there arrives as app_mention."""
    follow_up = decide_message(_group_dm(), BOT, direct_messages=True)
    assert isinstance(follow_up, Turn) and follow_up.follow_up and follow_up.channel_id == "G024BE91L"
    assert follow_up.thread_ts == "1764064800.123456" and follow_up.text == "thanks, also check the migration logs"
    top_level = _group_dm()
    del top_level["event"]["thread_ts"]
    assert decide_message(top_level, BOT, direct_messages=True) == Ignored(Reason.NOT_A_MENTION)
    to_bob = decide_message(_group_dm(text="<@U0456EFGH> can you look?"), BOT)
    assert to_bob == Ignored(Reason.NOT_A_MENTION, "to someone else")


def test_a_slack_connect_mention_is_the_installing_workspaces_turn() -> None:
    """In a channel shared with another organisation, the envelope's team_id is the workspace the event happened
    in; the binding (keyed by Bolt's context.team_id, authorizations[0]) is the installing workspace's."""
    body = _fixture("app_mention_slack_connect.json")
    decision = decide_mention(body, BOT)
    assert isinstance(decision, Turn)
    assert decision.team_id == "T0123ABCD" == extract_team_id(body) != body["team_id"]
    follow_up = copy.deepcopy(body)
    follow_up["event"].update(type="message", channel_type="channel", thread_ts="1764065000.000001")
    reply = decide_message(follow_up, BOT)
    assert isinstance(reply, Turn) and reply.team_id == "T0123ABCD"


def test_without_authorizations_the_envelopes_workspace_is_used() -> None:
    body = copy.deepcopy(_fixture("app_mention.json"))
    del body["authorizations"]
    decision = decide_mention(body, BOT)
    assert isinstance(decision, Turn) and decision.team_id == "T0123ABCD"
    body["authorizations"] = [{"enterprise_id": "E1", "team_id": None, "is_enterprise_install": True}]
    decision = decide_mention(body, BOT)
    assert isinstance(decision, Turn) and decision.team_id == "T0123ABCD"


def test_an_edited_mention_never_asks_the_agents_again() -> None:
    """Slack sends app_mention again, with `edited`, for an edit of a message that mentions the bot (or an edit
    that adds the mention): an edit is not a new question."""
    assert decide_mention(_fixture("app_mention_edited.json"), BOT) == Ignored(Reason.EDITED)
    edited_reply = copy.deepcopy(_fixture("message_in_thread.json"))
    edited_reply["event"]["edited"] = {"user": "U0123ABCD", "ts": "1764064930.000000"}
    assert decide_message(edited_reply, BOT) == Ignored(Reason.EDITED)


def _reply(text: str) -> dict[str, Any]:
    body = copy.deepcopy(_fixture("message_in_thread.json"))
    body["event"]["text"] = text
    return body


def test_a_thread_reply_addressed_to_someone_else_is_left_to_them() -> None:
    """In the bot's thread, a reply that opens by mentioning another person or a user group speaks to them, not
    to the agents; a reply that only names someone further on is still the agents'."""
    for text in ("<@U0456EFGH> can you confirm the numbers?", "<!subteam^S0123ABCD|@oncall> please look",
                 "  <@W0456EFGH|bob> ?"):
        decision = decide_message(_reply(text), BOT)
        assert isinstance(decision, Ignored) and decision.reason == Reason.NOT_A_MENTION, text
    decision = decide_message(_reply("thanks <@U0456EFGH>, now summarise it"), BOT)
    assert isinstance(decision, Turn) and decision.follow_up
    # One that mentions the bot is the message twin of an app_mention: the mention itself (a stop in it stops).
    decision = decide_message(_reply("<@U0BOTABCD> and <@U0456EFGH>: go on"), BOT)
    assert isinstance(decision, Turn) and not decision.follow_up
    in_a_dm = _reply("<@U0BOTABCD> are you there?")
    in_a_dm["event"]["channel_type"] = "im"  # no app_mention comes in a DM: it stays a follow-up
    decision = decide_message(in_a_dm, BOT)
    assert isinstance(decision, Turn) and decision.follow_up


def test_a_deleted_message_names_the_message_whose_turn_is_withdrawn() -> None:
    body = _fixture("message_deleted.json")
    assert deleted_message(body) == ("T0123ABCD", "C0123ABCD", "1764064800.123456")
    assert isinstance(decide_message(body, BOT), Ignored)  # never a turn itself
    assert deleted_message(_fixture("message_changed.json")) is None
    assert deleted_message(_fixture("app_mention.json")) is None
    body["event"]["deleted_ts"] = "not a ts"
    assert deleted_message(body) is None


def test_a_channel_id_change_names_the_workspace_and_both_ids() -> None:
    event = {"type": "channel_id_changed", "old_channel_id": "G012Y48650T", "new_channel_id": "C012Y48650T",
             "event_ts": "1612206778.000000"}  # docs.slack.dev/reference/events/channel_id_changed
    body = {**_fixture("app_mention.json"), "event": event}
    assert channel_moved(body) == ("T0123ABCD", "G012Y48650T", "C012Y48650T")
    assert channel_moved({**body, "event": {**event, "new_channel_id": ""}}) is None
    assert channel_moved(_fixture("app_mention.json")) is None


def test_an_edited_mention_gives_its_new_words_to_a_turn_that_still_waits() -> None:
    edited = _fixture("app_mention_edited.json")
    assert edited_message(edited, BOT) == (
        "T0123ABCD", "C0123ABCD", "1764064800.123456", "what changed in the last deploy? <prod> & staging (and canary)",
        None, "1764064830.000000",
    )
    changed = _fixture("message_changed.json")
    assert edited_message(changed, BOT) is None, "the bot's own reply edited"
    person = copy.deepcopy(changed)
    message = person["event"]["message"]
    for key in ("subtype", "username", "icons", "bot_id", "app_id"):
        message.pop(key)
    message.update(user="U0123ABCD", text="<@U0BOTABCD> the fixed question")
    assert edited_message(person, BOT) == ("T0123ABCD", "C0123ABCD", "1764064802.000200", "the fixed question", None,
                                           "1764064803.000000")
    message.pop("edited")
    assert edited_message(person, BOT) is None, "Slack changed the message (an unfurl), nobody edited it"
    assert edited_message(_fixture("app_mention.json"), BOT) is None
    assert edited_to_nothing(edited, BOT) is None and edited_to_nothing(person, BOT) is None


def test_a_mention_edited_down_to_the_bot_keeps_its_files_or_is_left_with_nothing() -> None:
    """revBF: an edit that leaves only the bot's mention was read as no edit at all, and the waiting turn kept the
    words taken out: with files left it carries them alone (text ""), with none it has nothing to answer."""
    emptied = _fixture("app_mention_edited.json")
    emptied["event"]["text"] = "<@U0BOTABCD>"
    # revDP: with no `files` key the edit says nothing of the files, which stay; the relay takes the turn back only
    # if it has none (store/slack_changes.edit_turn "emptied"). Before, a mention of a chart was taken back.
    edit = ("T0123ABCD", "C0123ABCD", "1764064800.123456", "", None, "1764064830.000000")
    assert edited_message(emptied, BOT) == edit
    assert edited_to_nothing(emptied, BOT) is None
    emptied["event"]["files"] = []
    assert edited_message(emptied, BOT) is None
    assert edited_to_nothing(emptied, BOT) == ("T0123ABCD", "C0123ABCD", "1764064800.123456")
    emptied["event"]["files"] = _fixture("app_mention_with_files.json")["event"]["files"]
    kept = tuple(f["id"] for f in emptied["event"]["files"])
    assert edited_message(emptied, BOT) == (*edit[:4], kept, edit[5])
    assert edited_to_nothing(emptied, BOT) is None
    emptied["event"]["bot_id"] = "B0OTHERBT"
    assert edited_to_nothing(emptied, BOT) is None, "a bot's message edited is no person's edit"


def test_a_mention_naming_the_bot_twice_or_beside_another_bot_is_one_turn_with_the_others_kept() -> None:
    body = _fixture("app_mention.json")
    body["event"]["text"] = "<@U0BOTABCD> ask <@U0OTHERBT> and <@U0BOTABCD|letta> again"
    decision = decide_mention(body, BOT)
    assert isinstance(decision, Turn) and decision.text == "ask <@U0OTHERBT> and again"
    body["event"]["text"] = "<@U0BOTABCD> <@U0BOTABCD|letta>"
    assert decide_mention(body, BOT) == Ignored(Reason.EMPTY)
    from_other_bot = _fixture("app_mention.json")
    from_other_bot["event"].update(bot_id="B0OTHERBT", subtype="bot_message")  # another app's post naming ours
    assert decide_mention(from_other_bot, BOT) == Ignored(Reason.FROM_BOT)


def test_an_edit_says_which_files_the_message_still_has_only_when_it_lists_them() -> None:
    """revBZ: only whether files remained was read, so a file taken out of a waiting mention was still sent. No
    capture shows a person's edit to none of its files, so a message with no `files` key says nothing of them
    (None: the stored files stay); a `files` list, empty or not, is what the message has now."""
    person = _fixture("app_mention_edited.json")
    assert edited_message(person, BOT) is not None and edited_message(person, BOT)[4] is None  # type: ignore[index]
    person["event"]["files"] = [{"id": "F1", "name": "a.png"}, {"id": "F2", "name": "b.png"}, "not a file"]
    assert edited_message(person, BOT)[4] == ("F1", "F2")  # type: ignore[index]
    person["event"]["files"] = []
    assert edited_message(person, BOT)[4] == ()  # type: ignore[index]
    person["event"]["text"] = "<@U0BOTABCD>"
    assert edited_message(person, BOT) is None and edited_to_nothing(person, BOT) is not None


CODE = "<@U0BOTABCD> why does this fail?\n```\ndef f():\n    if x:\n        return 1\n```\n- step one\n- step two"


def test_a_mentions_lines_and_indentation_are_kept() -> None:
    """A pasted code block, stack trace or list keeps its lines: Python without its indentation is other code."""
    body = _fixture("app_mention.json")
    body["event"]["text"] = CODE
    turn = decide_mention(body, BOT)
    assert isinstance(turn, Turn)
    assert turn.text == "why does this fail?\n```\ndef f():\n    if x:\n        return 1\n```\n- step one\n- step two"


def test_only_line_ends_blank_edges_and_the_bots_mention_are_taken_from_a_mentions_lines() -> None:
    """Windows line ends become \\n, each line loses its trailing spaces, blank lines around the message go; a
    mention opening a line takes no indentation with it, and a one-line message has no spaces around it."""
    assert clean_text("<@U0BOTABCD>\r\n\r\n    x = 1   \r\n  \ty &amp; z\t\r\n\r\n", BOT) == "    x = 1\n  \ty & z"
    assert clean_text("hey <@U0BOTABCD>   look\n<@U0BOTABCD>\n  indented", BOT) == "hey look\n\n  indented"
    assert clean_text("  <@U0BOTABCD>   stop  ", BOT) == "stop"
    assert clean_text("<@U0BOTABCD>\n\u200b\n \n", BOT) == ""


def test_a_session_title_is_a_multi_line_mentions_first_line() -> None:
    """docs/sessions.md: a session's title is the message's first line, not the whole message run together."""
    body = _fixture("app_mention.json")
    body["event"]["text"] = CODE
    turn = decide_mention(body, BOT)
    assert isinstance(turn, Turn) and session_title(turn.text) == "why does this fail?"
