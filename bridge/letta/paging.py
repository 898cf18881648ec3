"""Letta's lists followed page by page (`after` = the last id of a page), up to a cap, for the REST client and the
App Server's alike: the /letta menu and lists, and every lookup that must see past the first page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

# Enough for any menu Slack can show (100 options); a bigger server is listed in part, and says so.
LIST_CAP = 500
PAGE_SIZE = 100


class _Listed(Protocol):
    @property
    def id(self) -> str: ...


Item = TypeVar("Item", bound=_Listed)


async def every(fetch: Callable[[int, str | None], Awaitable[list[Item]]], cap: int) -> list[Item]:
    """Follow `after` cursors until a short or empty page. Letta 0.11.7 answers [] to any `after` for
    groups, so there the first page is all there is; a page that repeats itself ends the walk too."""
    items: list[Item] = []
    seen: set[str] = set()
    after: str | None = None
    while len(items) < cap:
        limit = min(PAGE_SIZE, cap - len(items))
        page = await fetch(limit, after)
        fresh = [item for item in page if item.id not in seen]
        items.extend(fresh)
        seen.update(item.id for item in fresh)
        if len(page) < limit or not fresh:
            break
        after = page[-1].id
    return items
