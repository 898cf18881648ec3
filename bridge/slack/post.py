"""Everything the bridge posts to Slack; rate limits are retried by slack_sdk's handlers on the client."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.slack.render import escape, reply_texts

log = logging.getLogger(__name__)


class SlackPostError(Exception):
    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error


def _error(exc: SlackApiError) -> str:
    data = exc.response.data if exc.response is not None else None
    if isinstance(data, dict):
        return str(data.get("error", "unknown"))
    return "unknown"


class SlackPoster:
    def __init__(self, client: AsyncWebClient, named_by_username: bool = True) -> None:
        self._client = client
        self._named_by_username = named_by_username

    async def reply(self, channel: str, thread_ts: str, agent_name: str, text: str) -> list[str]:
        """Post one agent's reply into the thread, under its name; returns the posted timestamps."""
        username = agent_name if self._named_by_username else None
        posted: list[str] = []
        for part in reply_texts(agent_name, text, self._named_by_username):
            posted.append(await self._post(channel, thread_ts, part, username))
        return posted

    async def notice(self, channel: str, thread_ts: str, text: str) -> str:
        """A message from the bridge itself (errors, hints); the text is the bridge's, so only escaped."""
        return await self._post(channel, thread_ts, escape(text), None)

    async def react(self, channel: str, ts: str, name: str) -> None:
        try:
            await self._client.reactions_add(channel=channel, timestamp=ts, name=name)
        except SlackApiError as exc:
            if _error(exc) != "already_reacted":
                log.warning("slack reactions.add failed channel=%s error=%s", channel, _error(exc))

    async def unreact(self, channel: str, ts: str, name: str) -> None:
        try:
            await self._client.reactions_remove(channel=channel, timestamp=ts, name=name)
        except SlackApiError as exc:
            if _error(exc) != "no_reaction":
                log.warning("slack reactions.remove failed channel=%s error=%s", channel, _error(exc))

    async def _post(self, channel: str, thread_ts: str, text: str, username: str | None) -> str:
        try:
            response = await self._client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=text,
                username=username,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            error = _error(exc)
            log.warning("slack chat.postMessage failed channel=%s error=%s", channel, error)
            raise SlackPostError("chat.postMessage", error) from None
        return str(response.get("ts", ""))
