"""Bolt's AsyncApp, with the Slack client it makes for each request taking the bridge's proxy; and a request's
form body given to Bolt already read where Bolt would misread it.

Bolt copies its client's settings into a new client per request, but slack_sdk reads a proxy of None as "ask the
environment" (HTTPS_PROXY, ignoring NO_PROXY and ALL_PROXY): a call made while answering a request (the first
request's auth.test, a listener's views.open) would leave by another route than the bridge's own calls. Its
respond() had both faults: it took the client's proxy (the rule's answer for Slack's API host, not for the
response_url's) and, where that was None, HTTPS_PROXY again; `RoutedRespond` asks the rule for the response_url.

Bolt answers 200 when its authorize finds nothing or meets a SlackApiError, which ends the request for good; a
request that can be served later (a token renewal Slack refused for a while; with one workspace, the first
request's auth.test meeting Slack's trouble) is raised as `TryLater` instead, which Bolt answers 500, so that it is
delivered again: by Slack, or by arrivals.py from the events inbox. A listener that met a database failure (a
`sqlite3` shell holding the lock) is answered 500 the same way, said in one line instead of Bolt's traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from ssl import SSLContext
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.context.respond.internals import _build_message
from slack_bolt.listener.async_listener_error_handler import AsyncDefaultListenerErrorHandler
from slack_bolt.middleware.async_middleware_error_handler import AsyncDefaultMiddlewareErrorHandler
from slack_bolt.middleware.authorization.async_internals import _is_no_auth_required
from slack_bolt.middleware.authorization.async_single_team_authorization import AsyncSingleTeamAuthorization
from slack_bolt.middleware.authorization.internals import _is_no_auth_test_call_required
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.payload_utils import is_event
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.models.attachments import Attachment
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook import WebhookResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bridge.proxies import proxy_for
from bridge.slack.decide import installed_team
from bridge.slack.failures import FAILURES, PERMANENT, slack_error
from bridge.store.base import database_trouble, trouble_words

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"


class TryLater(Exception):
    """Raised inside Bolt's middleware (its authorize) for a request that cannot be served now but may be later."""


class MiddlewareErrors(AsyncDefaultMiddlewareErrorHandler):
    """Bolt's handler of a middleware's exception (the request is answered 500), saying a `TryLater` in one line:
    it is an expected condition, not a crash to show with its traceback."""

    async def handle(self, error: Exception, request: AsyncBoltRequest, response: BoltResponse | None) -> None:
        if isinstance(error, TryLater):
            log.warning("slack request answered 500, to be delivered again: %s", error)
            return
        await super().handle(error, request, response)


class ListenerErrors(AsyncDefaultListenerErrorHandler):
    """Bolt's handler of a listener's exception (answered 500): a database failure is an expected condition, met on
    every try while it lasts, so it is said in one line; anything else keeps its traceback. Only an Events API
    request is handled again (Slack delivers it again, or the inbox keeps it); an interaction or a command is not,
    so its line says so."""

    async def handle(self, error: Exception, request: AsyncBoltRequest, response: BoltResponse | None) -> None:
        if database_trouble(error):
            words = trouble_words(error, retried=True)
            if is_event(request.body if isinstance(request.body, dict) else {}):
                log.warning("slack request answered 500, to be handled again: %s", words)
            else:
                log.warning("slack request answered 500, not recorded (Slack does not deliver it again; the person"
                            " may press or send it again): %s", words)
            return
        await super().handle(error, request, response)


class SingleTeamAuthorization(AsyncSingleTeamAuthorization):
    """Bolt's one-workspace authorize, which asks auth.test on the first request that needs it and answers 200 to
    any SlackApiError: a Slack 5xx or rate limit there lost that request, and every event the events inbox handed
    over at a start, though each had been acknowledged. Only a token Slack refuses is left to Bolt's answer."""

    _asking: asyncio.Future[AsyncSlackResponse] | None = None  # the one auth.test every request waits for

    async def async_process(
        self, *, req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        asks = not (_is_no_auth_required(req) or _is_no_auth_test_call_required(req))
        if self.auth_test_result is None and asks and req.context.client is not None:
            try:
                self.auth_test_result = await self._auth_test(req.context.client)
            except SlackApiError as exc:
                if slack_error(exc) not in PERMANENT:
                    return _later(req, f"Slack did not confirm the bot token error={slack_error(exc)}", exc)
            except FAILURES as exc:
                return _later(req, f"Slack could not be asked to confirm the bot token error={slack_error(exc)}", exc)
        return await super().async_process(req=req, resp=resp, next=next)

    async def _auth_test(self, client: AsyncWebClient) -> AsyncSlackResponse:
        """One auth.test for every request that arrives before it is answered, each going on in the order it came
        (a burst handed over at a start: one call each, and those after the answer overtook those waiting for
        theirs); a failure is every waiting request's, each served again later, still in order."""
        if self._asking is None:
            self._asking = asyncio.ensure_future(client.auth_test())
            self._asking.add_done_callback(self._asked)
        return await asyncio.shield(self._asking)

    def _asked(self, asking: asyncio.Future[AsyncSlackResponse]) -> None:
        if asking.cancelled() or asking.exception() is not None:
            self._asking = None  # the next request asks again


REQUEST_WORKSPACE = "bridge_request_workspace"  # context key: the workspace the request is for (decide.installed_team)
COMMAND_LATER = "Slack did not answer me just now, so I could not take this command: try it again in a minute."


def _later(req: AsyncBoltRequest, why: str, exc: Exception) -> BoltResponse:
    """A request that can be served later: TryLater (answered 500) for what is delivered again (events: by Slack,
    or from the inbox); a slash command, which Slack never sends again (it would show the person only that the
    command failed), is answered with the reason in words instead."""
    body = req.body if isinstance(req.body, dict) else {}
    if body.get("command"):
        log.warning("slack command answered with try again: %s", why)
        return BoltResponse(status=200, body=COMMAND_LATER)
    raise TryLater(why) from exc


def _asking_again(middleware: Any, logger: logging.Logger | None) -> Any:
    """Bolt's one-workspace authorize (the app has a token and no OAuth), swapped for SingleTeamAuthorization."""
    if type(middleware) is not AsyncSingleTeamAuthorization:
        return middleware
    said = middleware.user_facing_authorize_error_message
    return SingleTeamAuthorization(base_logger=logger, user_facing_authorize_error_message=said)


class RoutedRespond(AsyncRespond):
    """Bolt's respond(), its connection to the response_url routed by the bridge's rule for that URL."""

    def __init__(self, *, response_url: str | None, ssl: SSLContext | None = None) -> None:
        super().__init__(response_url=response_url, proxy=proxy_for(response_url) if response_url else None, ssl=ssl)

    async def __call__(
        self,
        text: str | dict[str, Any] = "",
        blocks: Sequence[dict[str, Any] | Block] | None = None,
        attachments: Sequence[dict[str, Any] | Attachment] | None = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> WebhookResponse:
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        client = AsyncWebhookClient(url=self.response_url, ssl=self.ssl)
        client.proxy = self.proxy  # after __init__, which takes HTTPS_PROXY for a proxy of None (direct)
        if isinstance(text, dict):
            return await client.send_dict(_build_message(**text))
        message = _build_message(
            text=text,
            blocks=blocks,
            attachments=attachments,
            response_type=response_type,
            replace_original=replace_original,
            delete_original=delete_original,
            unfurl_links=unfurl_links,
            unfurl_media=unfurl_media,
            thread_ts=thread_ts,
            metadata=metadata,
        )
        return await client.send_dict(message)


class BridgeApp(AsyncApp):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._async_middleware_error_handler = MiddlewareErrors(self._framework_logger)
        self._async_listener_runner.listener_error_handler = ListenerErrors(self._framework_logger)
        self._async_middleware_list = [_asking_again(m, self._base_logger) for m in self._async_middleware_list]

    def _init_context(self, req: AsyncBoltRequest) -> None:
        super()._init_context(req)
        client = req.context.client
        if client is not None:
            client.proxy = self.client.proxy  # the bridge's rule, bridge/proxies.py (None: direct)
        body = req.body if isinstance(req.body, dict) else {}
        # The workspace the request is for, which Bolt leaves out (context.team_id None) for an org-wide install:
        # the authorize records it under its org, so that work outside this request finds the org's install.
        req.context[REQUEST_WORKSPACE] = installed_team(body)
        req.context["respond"] = RoutedRespond(response_url=req.context.response_url,
                                               ssl=client.ssl if client is not None else None)


def as_bolt_reads_it(request: AsyncBoltRequest) -> AsyncBoltRequest:
    """The request, with a form body Bolt would misread given to it already read.

    Bolt takes any form body in which the word "payload" appears for an interactivity payload, and reads one
    without a `payload` field as nothing: `/letta status` typed in #payloads, or any command whose text says
    "payload", went unanswered (404 "unhandled request"). The gate has checked the signature before this; Bolt's
    "socket_mode" is what makes it take a body already read, and skip checking it again.
    """
    if request.body or request.content_type != FORM or "payload" not in request.raw_body:
        return request
    fields = dict(parse_qsl(request.raw_body, keep_blank_values=True))
    if "payload" in fields:
        return request
    return AsyncBoltRequest(body=fields, query=request.query, headers=request.headers, mode="socket_mode")
