"""The fair floor: a bare slack-bolt app that durably records each event in SQLite before acknowledging it.

The physical floor for an app that loses nothing: `bench/bare_app.py` served the same way, whose app_mention
listener writes the event (its id and body) with one INSERT on one aiosqlite connection, in autocommit, with the
bridge's own durability settings (WAL, synchronous=NORMAL: committed before the ack, so a crashed process loses
nothing) and a primary key that drops a retried event. Run as `python -m bench.recording_app` with the bare app's
variables plus DATABASE_URL (sqlite:///path).

With BENCH_BUSY_THREAD=1 a thread of its own process keeps the interpreter busy beside it, handing the lock over
as often as the bridge's ingress asks (`bridge.ingress.SWITCH_INTERVAL`): what the bridge's turns, flat out on the
main thread, do to its acknowledgements, on an app that does nothing else.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import aiosqlite
from aiohttp import web

from bench.bare_app import build, serve
from bridge.ingress import SWITCH_INTERVAL


async def open_db(url: str) -> aiosqlite.Connection:
    db = await aiosqlite.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000"):
        await db.execute(f"PRAGMA {pragma}")
    await db.execute("CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, body TEXT NOT NULL)")
    return db


def recording_app(after: Callable[[dict[str, Any]], None] | None = None) -> web.Application:
    """The app; `after` is called with each recorded event's body before the ack (bench/relay_app.py)."""
    holder: dict[str, aiosqlite.Connection] = {}

    async def record(body: dict[str, Any]) -> None:
        await holder["db"].execute(
            "INSERT OR IGNORE INTO events (event_id, body) VALUES (?, ?)", (body.get("event_id"), json.dumps(body))
        )
        if after is not None:
            after(body)

    async def start(_app: web.Application) -> None:
        holder["db"] = await open_db(os.environ["DATABASE_URL"])

    async def stop(_app: web.Application) -> None:
        await holder["db"].close()

    app = build(record)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def keep_busy() -> None:
    """Pure interpreter work, for ever: one core, and the interpreter lock whenever nobody else asks for it."""
    while True:
        sum(range(1000))


if __name__ == "__main__":
    if os.environ.get("BENCH_BUSY_THREAD"):
        sys.setswitchinterval(SWITCH_INTERVAL)
        threading.Thread(target=keep_busy, name="busy", daemon=True).start()
    asyncio.run(serve(recording_app()))
