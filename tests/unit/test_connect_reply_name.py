"""An external (Slack Connect) person's thread reply is named by the profile Slack embeds in it (docs/mentions.md).
conversations.replies answers the thread's parent first (reference/slack/web-api/conversations.replies.json:
"messages[0] is the parent; replies follow"); with `limit=1` the reply's own window held the parent alone, and the
agents read the person's user id (found by review revDW). The stub below answers with the parent first whatever
`oldest` says, as the reviewer reads Slack; the repo's fake leaves the parent out of such a window."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bridge.slack.directory import Directory
from tests.unit.test_directory import Clock, Unused

PARENT, REPLY = "1764065100.111111", "1764065200.222222"
THREAD = [
    {"type": "message", "user": "U0123ABCD", "ts": PARENT, "thread_ts": PARENT, "text": "our contract",
     "reply_count": 1},
    {"type": "message", "user": "U0EXTPERS", "ts": REPLY, "thread_ts": PARENT, "text": "any news?",
     "user_profile": {"display_name": "pat", "real_name": "Pat External", "team": "T0EXTERNL"}},
]


def _response(data: dict[str, Any], status: int = 200) -> AsyncSlackResponse:
    return AsyncSlackResponse(client=None, http_verb="GET", api_url="", req_args={}, data=data, headers={},
                              status_code=status)


class SlackLikeReads:
    async def users_info(self, user: str) -> AsyncSlackResponse:
        raise SlackApiError("user_not_found", _response({"ok": False, "error": "user_not_found"}))

    async def conversations_replies(self, channel: str, ts: str, oldest: str = "", latest: str = "",
                                    inclusive: bool = False, limit: int = 1000, **_: Any) -> AsyncSlackResponse:
        def within(m: dict[str, Any]) -> bool:
            t = float(m["ts"])
            lo = not oldest or t > float(oldest) or (inclusive and t == float(oldest))
            hi = not latest or t < float(latest) or (inclusive and t == float(latest))
            return lo and hi
        # Slack: the parent always first, then the replies in the range.
        messages = [THREAD[0], *[m for m in THREAD[1:] if within(m)]]
        return _response({"ok": True, "messages": messages[:limit], "has_more": len(messages) > limit})


def test_an_external_persons_thread_reply_is_named_by_the_profile_in_it() -> None:
    names = Directory(Unused(), SlackLikeReads(), Clock())  # type: ignore[arg-type]
    name = asyncio.run(names.user_name("U0EXTPERS", ("C0CONNECT1", REPLY)))
    assert name == "pat", f"the agents are told {name!r}"

