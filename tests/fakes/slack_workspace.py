"""The fake Slack's workspace: its users and channels (the reference ones seeded, more added by tests), each
channel's messages and reactions, and the Web API methods that read and change them (chat.postMessage and
chat.update, reactions.*, users.info, conversations.info and conversations.replies)."""

from __future__ import annotations

import base64
import copy
import threading
import time
import uuid
from typing import Any

from tests.fakes.slack_reference import blocks_error, jsonish, ref_body, rich_text, ts_key


class SlackWorkspace:
    """Mixed into FakeSlack, which provides team_id, bot_user_id, bot_id, app_id, scopes and _lock."""

    team_id: str
    bot_user_id: str
    bot_id: str
    app_id: str
    scopes: str
    _lock: threading.RLock

    def _init_workspace(self) -> None:
        # Slack's rule since 2025 for apps outside the Marketplace: conversations.replies gives at most this many
        # messages a call, and after `replies_calls` calls answers 429 ratelimited (None: no such limits).
        self.replies_per_call: int | None = None
        self.replies_calls: int | None = None
        self._users: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._deleted: set[str] = set()  # channels deleted (delete_channel): posts there answer channel_not_found
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._reactions: set[tuple[str, str, str]] = set()
        # Messages whose blocks were given (posted or edited with blocks, or streamed): chat.update without `blocks`
        # keeps them ("If you don't include this field, the message's previous blocks will be retained"), so only
        # the notification text changes and the message shows what it showed.
        self.given_blocks: set[tuple[str, str]] = set()
        self._last_ts_us = 0
        self._seed_reference_identities()

    def shown(self, channel: str, ts: str) -> str:
        """What a message shows in Slack: its given blocks' texts (sections, markdown, rich text), else its text."""
        with self._lock:
            msg = self._find(channel, ts)
            if msg is None:
                return ""
            if (channel, ts) not in self.given_blocks:
                return str(msg.get("text") or "")
            return "\n".join(_block_text(block) for block in msg.get("blocks") or [] if _block_text(block))

    def messages(self, channel: str | None = None, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Current stored messages (posts after edits, finished/ongoing streams, seeded ones)."""
        with self._lock:
            out = [
                copy.deepcopy(m)
                for ch, msgs in self._messages.items()
                if channel is None or ch == channel
                for m in msgs
                if thread_ts is None or thread_ts in (m.get("ts"), m.get("thread_ts"))
            ]
        return sorted(out, key=lambda m: ts_key(m["ts"]))

    def reactions(self, channel: str, ts: str) -> set[str]:
        """Reaction names the bot currently has on one message."""
        with self._lock:
            return {name for ch, t, name in self._reactions if ch == channel and t == ts}

    def add_user(
        self,
        user_id: str,
        name: str,
        display_name: str = "",
        real_name: str = "",
        is_admin: bool = False,
        is_owner: bool = False,
        is_bot: bool = False,
        guest: str = "",
    ) -> None:
        """Register a user served by users.info (shaped like users.info.json's ok / ok_bot_user); `guest`: "multi"
        (is_restricted) or "single" (is_ultra_restricted), as the capture's notes say."""
        user = ref_body("users.info", "ok_bot_user" if is_bot else "ok")["user"]
        real = real_name or name
        first, _, last = real.partition(" ")
        user.update(id=user_id, team_id=self.team_id, name=name, real_name=real)
        user.update(is_admin=is_admin, is_owner=is_owner, is_primary_owner=False, is_bot=is_bot)
        user.update(is_restricted=guest in ("multi", "single"), is_ultra_restricted=guest == "single")
        profile = user["profile"]
        profile.update(real_name=real, real_name_normalized=real, first_name=first, last_name=last)
        profile.update(display_name=display_name, display_name_normalized=display_name, team=self.team_id)
        if not is_bot:
            profile["email"] = f"{name}@example.com"
        with self._lock:
            self._users[user_id] = user

    def add_channel(
        self, channel_id: str, name: str, creator: str = "U0123ABCD", is_private: bool = False, is_mpim: bool = False
    ) -> None:
        """Register a channel served by conversations.info (shaped like conversations.info.json); `is_mpim`: a
        group DM (docs.slack.dev/reference/objects/mpim-object: private, neither channel nor group), whose thread
        conversations.replies reads only with mpim:history. A D… id is a DM, served as Slack does: no name."""
        if channel_id.startswith("D"):
            self.add_dm(channel_id, creator)
            return
        channel = ref_body("conversations.info", "ok_private" if is_private or is_mpim else "ok")["channel"]
        channel.update(id=channel_id, name=name, name_normalized=name, creator=creator, is_private=is_private)
        if is_mpim:
            channel.update(is_mpim=True, is_private=True, is_channel=False, is_group=False)
        channel.update(context_team_id=self.team_id, shared_team_ids=[self.team_id])
        channel["topic"]["creator"] = channel["purpose"]["creator"] = creator
        with self._lock:
            self._channels[channel_id] = channel

    def add_dm(self, channel_id: str, user: str = "U0123ABCD") -> None:
        """Register a DM with `user`, as conversations.info answers for one (its `ok_im` case: is_im, no name)."""
        channel = ref_body("conversations.info", "ok_im")["channel"]
        channel.update(id=channel_id, user=user, context_team_id=self.team_id)
        with self._lock:
            self._channels[channel_id] = channel

    def archive_channel(self, channel_id: str, archived: bool = True) -> None:
        """The channel archived (or unarchived): conversations.info says `is_archived` (conversations.info.json),
        and chat.postMessage and reactions.add answer `is_archived` (their reference cases, from Slack's docs)."""
        with self._lock:
            self._channel_of(channel_id)["is_archived"] = archived

    def remove_bot(self, channel_id: str, removed: bool = True) -> None:
        """The bot removed from a public channel (or invited back): conversations.info says `is_member: false`
        and chat.postMessage answers `not_in_channel` (its reference case)."""
        with self._lock:
            self._channel_of(channel_id)["is_member"] = not removed

    def delete_channel(self, channel_id: str) -> None:
        """The channel deleted (or, private, the bot removed from it): Slack no longer shows it to the bot, so
        conversations.info and chat.postMessage answer `channel_not_found` (their reference cases)."""
        with self._lock:
            self._channels.pop(channel_id, None)
            self._deleted.add(channel_id)

    def _channel_of(self, channel_id: str) -> dict[str, Any]:
        """The channel conversations.info serves, registered as a public one (#<id>) when a test never added it
        (a DM as a DM)."""
        if channel_id not in self._channels:
            self.add_channel(channel_id, channel_id.lower())
        return self._channels[channel_id]

    def _refusal(self, channel: Any) -> str | None:
        """Why Slack refuses a post or reaction in the channel as it stands, if it does."""
        if str(channel) in self._deleted:
            return "channel_not_found"
        state = self._channels.get(str(channel)) or {}
        if state.get("is_archived"):
            return "is_archived"
        return "not_in_channel" if state.get("is_member") is False else None

    def add_message(
        self,
        channel: str,
        text: str,
        user: str = "U0123ABCD",
        ts: str | None = None,
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
        user_profile: dict[str, Any] | None = None,
    ) -> str:
        """Seed a human message (e.g. a thread root) so conversations.replies can return it; returns its ts. With
        `files`, a file share (reference/slack/events/message_file_share.json); with `user_profile`, said by a
        person of another organisation in a Slack Connect channel, whose profile Slack embeds in the message
        (reference/slack/events/app_mention_slack_connect.json), `user_team` theirs."""
        ts = ts or self._next_ts()
        msg: dict[str, Any] = {"user": user, "type": "message", "ts": ts, "client_msg_id": str(uuid.uuid4())}
        msg.update(text=text, team=self.team_id)
        if files:
            msg.update(files=files, subtype="file_share", upload=True)
        if user_profile:
            team = str(user_profile.get("team") or self.team_id)
            msg.update(user_profile=user_profile, team=team, user_team=team, source_team=team)
        if thread_ts:
            msg["thread_ts"] = thread_ts
            parent = self._find(channel, thread_ts)
            if parent and parent.get("user"):
                msg["parent_user_id"] = parent["user"]
        msg["blocks"] = rich_text(text)
        with self._lock:
            self._messages.setdefault(channel, []).append(msg)
        return ts

    def _seed_reference_identities(self) -> None:
        """Pre-register the reference users (alice, bob, the bot) and channels (#agents, private, DM)."""
        for case in ("ok", "ok_plain_member", "ok_bot_user"):
            user = ref_body("users.info", case)["user"]
            if case == "ok_bot_user":
                user["id"] = self.bot_user_id
                user["profile"].update(bot_id=self.bot_id, api_app_id=self.app_id)
            user["team_id"] = user["profile"]["team"] = self.team_id
            self._users[user["id"]] = user
        for case in ("ok", "ok_private", "ok_im"):
            channel = ref_body("conversations.info", case)["channel"]
            channel["context_team_id"] = self.team_id
            self._channels[channel["id"]] = channel

    def _next_ts(self) -> str:
        with self._lock:
            now = max(int(time.time() * 1_000_000), self._last_ts_us + 1)
            now += 1 - now % 2  # odd micros; signing.next_ts() uses even ones, so the two never collide
            self._last_ts_us = now
        return f"{now // 1_000_000}.{now % 1_000_000:06d}"

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        with self._lock:
            return next((m for m in self._messages.get(channel, []) if m.get("ts") == ts), None)

    def _store(self, channel: str, msg: dict[str, Any]) -> None:
        self._messages.setdefault(channel, []).append(copy.deepcopy(msg))

    def _api_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any] | str:
        channel = args.get("channel")
        text, blocks, md = args.get("text"), jsonish(args.get("blocks")), args.get("markdown_text")
        if not channel:
            return "channel_not_found"
        refused = self._refusal(channel)
        if refused:
            return refused
        if md and (text or blocks):
            return "markdown_text_conflict"
        if not (text or blocks or md or args.get("attachments")):
            return "no_text"
        if blocks is not None and not isinstance(blocks, list):
            return "invalid_blocks_format"
        if blocks_error(blocks):
            return "invalid_blocks"
        extra: dict[str, Any] = {}
        text = str(text or md or "")
        if len(text) > 40_000:
            text = text[:40_000]
            extra["response_metadata"] = ref_body("chat.postMessage", "ok_truncated_text")["response_metadata"]
        ts, thread_ts, username = self._next_ts(), args.get("thread_ts"), args.get("username")
        if "chat:write.customize" not in self.scopes.split(","):
            username = None  # "username/icon_emoji/icon_url only take effect with chat:write.customize" (reference)
        if username:
            msg = ref_body("chat.postMessage", "ok_with_custom_username")["message"]
            msg["username"] = username
            if args.get("icon_emoji"):
                msg["icons"]["emoji"] = args["icon_emoji"]
            elif args.get("icon_url"):
                msg["icons"] = {"image_48": args["icon_url"]}
            else:
                msg.pop("icons", None)
        else:
            msg = ref_body("chat.postMessage", "ok")["message"]
            msg.update(user=self.bot_user_id, team=self.team_id)
            msg["bot_profile"].update(id=self.bot_id, app_id=self.app_id, team_id=self.team_id)
        msg.update(text=text, ts=ts, bot_id=self.bot_id, app_id=self.app_id)
        msg["blocks"] = blocks if blocks else rich_text(text)
        if blocks:
            self.given_blocks.add((str(channel), ts))
        msg.pop("thread_ts", None)
        msg.pop("parent_user_id", None)
        if thread_ts and thread_ts != ts:
            msg["thread_ts"] = thread_ts
            parent = self._find(channel, thread_ts)
            if parent and parent.get("user"):
                msg["parent_user_id"] = parent["user"]
        self._store(channel, msg)
        return {"ok": True, "channel": channel, "ts": ts, "message": msg, **extra}

    def _api_chat_delete(self, args: dict[str, Any]) -> dict[str, Any] | str:
        """reference/slack/web-api/chat.delete.json: a bot token deletes only its bot's messages."""
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        if channel not in self._messages:
            return "channel_not_found"
        msg = self._find(channel, ts)
        if msg is None:
            return "message_not_found"
        if msg.get("bot_id") != self.bot_id:
            return "cant_delete_message"
        with self._lock:
            self._messages[channel] = [m for m in self._messages[channel] if m is not msg]
        return {"ok": True, "channel": channel, "ts": ts}

    def _api_chat_update(self, args: dict[str, Any]) -> dict[str, Any] | str:
        channel, ts = args.get("channel"), args.get("ts")
        text, blocks, md = args.get("text"), jsonish(args.get("blocks")), args.get("markdown_text")
        if not channel or channel not in self._messages:
            return "channel_not_found"
        if md and (text or blocks):
            return "markdown_text_conflict"
        if not (text or blocks or md or args.get("attachments")):
            return "no_text"
        if text and len(str(text)) > 4_000:
            return "msg_too_long"
        if blocks_error(blocks):
            return "invalid_blocks"
        msg = self._find(channel, str(ts))
        if msg is None:
            return "message_not_found"
        if msg.get("bot_id") != self.bot_id:
            return "cant_update_message"
        if (channel, ts) in self._streaming:
            return "streaming_state_conflict"
        msg["text"] = str(text or md or "")
        key = (str(channel), str(ts))
        if isinstance(blocks, list) and blocks:
            msg["blocks"] = blocks
            self.given_blocks.add(key)
        elif blocks is not None or key not in self.given_blocks:  # `[]` removes the blocks given before
            msg["blocks"] = rich_text(msg["text"])
            self.given_blocks.discard(key)
        msg["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {"ok": True, "channel": channel, "ts": ts, "text": msg["text"], "message": copy.deepcopy(msg)}

    def _reaction(self, args: dict[str, Any], add: bool) -> dict[str, Any] | str:
        channel, ts, name = args.get("channel"), args.get("timestamp"), args.get("name")
        if not channel or not ts:
            return "no_item_specified"
        if not name:
            return "invalid_name"
        if add and self._channels.get(str(channel), {}).get("is_archived"):
            return "is_archived"
        key = (str(channel), str(ts), str(name))
        if add == (key in self._reactions):
            return "already_reacted" if add else "no_reaction"
        (self._reactions.add if add else self._reactions.discard)(key)
        return {"ok": True}

    def _api_reactions_add(self, args: dict[str, Any]) -> dict[str, Any] | str:
        return self._reaction(args, add=True)

    def _api_reactions_remove(self, args: dict[str, Any]) -> dict[str, Any] | str:
        return self._reaction(args, add=False)

    def _api_users_info(self, args: dict[str, Any]) -> dict[str, Any] | str:
        user = self._users.get(str(args.get("user")))
        return {"ok": True, "user": copy.deepcopy(user)} if user else "user_not_found"

    def _api_conversations_info(self, args: dict[str, Any]) -> dict[str, Any] | str:
        """A DM or group DM is refused without im:read / mpim:read (the method's x-accepted-oauth-scopes name one
        scope per conversation type; `needed` as the one for its type is this fake's guess), as the manifest grants
        neither."""
        channel = self._channels.get(str(args.get("channel")))
        if not channel:
            return "channel_not_found"
        scope = "im:read" if channel.get("is_im") else "mpim:read" if channel.get("is_mpim") else None
        if scope is not None and scope not in self.scopes.split(","):
            refused = ref_body("conversations.info", "missing_scope")
            refused.update(needed=scope, provided=self.scopes)
            return refused
        return {"ok": True, "channel": copy.deepcopy(channel)}

    def _api_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any] | str:
        if self.replies_calls is not None:
            if self.replies_calls <= 0:
                return "ratelimited"
            self.replies_calls -= 1
        channel, ts = args.get("channel"), args.get("ts")
        if not channel:
            return "channel_not_found"
        if self._channels.get(str(channel), {}).get("is_mpim") and "mpim:history" not in self.scopes.split(","):
            refused = ref_body("conversations.replies", "missing_scope")
            refused.update(needed="mpim:history", provided=self.scopes)
            return refused
        target = self._find(str(channel), str(ts))
        root = target.get("thread_ts", ts) if target else ts
        thread = [m for m in self._messages.get(str(channel), []) if root in (m.get("ts"), m.get("thread_ts"))]
        if not ts or not thread:
            return "thread_not_found"
        thread.sort(key=lambda m: ts_key(m["ts"]))
        inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")
        if args.get("oldest"):
            oldest = ts_key(str(args["oldest"]))
            thread = [m for m in thread if ts_key(m["ts"]) > oldest or (inclusive and ts_key(m["ts"]) == oldest)]
        if args.get("latest"):
            latest = ts_key(str(args["latest"]))
            thread = [m for m in thread if ts_key(m["ts"]) < latest or (inclusive and ts_key(m["ts"]) == latest)]
        try:
            offset = int(base64.b64decode(str(args["cursor"])).decode().split(":")[1]) if args.get("cursor") else 0
            limit = max(1, int(args.get("limit") or 1000))
            limit = min(limit, self.replies_per_call or limit)
        except (ValueError, IndexError):
            return "invalid_cursor"
        end = offset + limit
        more = end < len(thread)
        cursor = base64.b64encode(f"next_offset:{end}".encode()).decode() if more else ""
        return {
            "ok": True,
            "messages": copy.deepcopy(thread[offset:end]),
            "has_more": more,
            "response_metadata": {"next_cursor": cursor},
        }


def _block_text(block: dict[str, Any]) -> str:
    """The words a block shows: a section's or markdown block's text, a rich text's text elements."""
    text = block.get("text")
    if isinstance(text, dict):
        return str(text.get("text") or "")
    if isinstance(text, str):
        return text
    return "".join(
        str(element.get("text") or "")
        for section in block.get("elements") or []
        if isinstance(section, dict)
        for element in section.get("elements") or []
        if isinstance(element, dict) and element.get("type") == "text"
    )
