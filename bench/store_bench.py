"""The store alone: `accept_turn` for many events, duplicates mixed in, vs a raw aiosqlite insert loop."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import aiosqlite

from bench.report import Figure, not_measured
from bench.stage import Options
from bench.stats import ratio, summary
from bridge.domain import Turn
from bridge.store import Store, open_store

BACKLOG_RATIO = 1.2


@dataclass(frozen=True)
class Event:
    turn: Turn
    duplicate: bool


def events(count: int, duplicate_share: float, seed: int = 10) -> list[Event]:
    """`count` deliveries; a share repeat an earlier one, half as a retry (same event id), half as a second
    event for the same message (new event id). Each repeat comes after its original."""
    rng = random.Random(seed)
    unique = max(1, round(count * (1 - duplicate_share)))
    originals = [
        Turn(
            "T0123ABCD",
            f"C{i % 100:05d}",
            f"1700000000.{i:06d}",
            f"1700000000.{i:06d}",
            "U0123ABCD",
            f"mention {i}",
            f"Ev{i:08d}",
        )
        for i in range(unique)
    ]
    keyed = [(float(i), Event(t, False)) for i, t in enumerate(originals)]
    for k in range(count - unique):
        j = rng.randrange(unique)
        source = originals[j]
        repeat = source if k % 2 == 0 else replace(source, event_id=f"Dup{k:08d}")
        keyed.append((j + rng.uniform(0.5, 50.0), Event(repeat, True)))  # always after its original
    keyed.sort(key=lambda pair: pair[0])
    return [event for _, event in keyed]


async def _store_run(path: Path | str, batch: list[Event]) -> tuple[float, int, int, int]:
    store = open_store(path if isinstance(path, str) else f"sqlite:///{path}")
    await store.open()
    accepted = dropped_dups = kept_dups = 0
    try:
        began = time.perf_counter()
        for i, event in enumerate(batch):
            turn_id = await store.accept_turn(event.turn, f"otid-{i}")
            if turn_id is not None:
                accepted += 1
                kept_dups += event.duplicate
            else:
                dropped_dups += event.duplicate
        elapsed = time.perf_counter() - began
    finally:
        await store.close()
    return elapsed, accepted, dropped_dups, kept_dups


async def _raw_run(path: Path, batch: list[Event]) -> float:
    """The floor: one INSERT per event in its own transaction, same pragmas, no dedupe logic."""
    db = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000"):
            await db.execute(f"PRAGMA {pragma}")
        await db.execute("CREATE TABLE IF NOT EXISTS ev (event_id TEXT PRIMARY KEY, body TEXT)")
        began = time.perf_counter()
        for event in batch:
            await db.execute("BEGIN IMMEDIATE")
            await db.execute("INSERT OR IGNORE INTO ev VALUES (?, ?)", (event.turn.event_id, event.turn.text))
            await db.execute("COMMIT")
        return time.perf_counter() - began
    finally:
        await db.close()


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM turns").fetchone()[0])


def sqlite(opts: Options) -> Figure:
    folder = opts.out / "store"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db*"):
        stale.unlink()
    batch = events(opts.store_events, opts.store_duplicates)
    dups = sum(e.duplicate for e in batch)
    before = asyncio.run(_raw_run(folder / "raw-before.db", batch))
    elapsed, accepted, dropped, kept = asyncio.run(_store_run(folder / "store.db", batch))
    raw = (before + asyncio.run(_raw_run(folder / "raw-after.db", batch))) / 2  # one run each side, averaged
    rows = _rows(folder / "store.db")
    rate, raw_rate = len(batch) / elapsed, len(batch) / raw
    correct = accepted == rows == len(batch) - dups and dropped == dups and kept == 0
    data = {
        "events": len(batch),
        "duplicates": dups,
        "accepted": accepted,
        "rows": rows,
        "duplicates_dropped": dropped,
        "events_per_s": round(rate),
        "raw_insert_events_per_s": round(raw_rate),
    }
    note = (
        f"{len(batch)} `accept_turn` calls one after another on a fresh file (WAL, synchronous=NORMAL), "
        f"{dups} of them repeats (half retried event ids, half a second event for the same message). "
        "Baseline in the same run, once before and once after: one raw INSERT per event in its own "
        f"transaction, {raw_rate:,.0f} events/s."
    )
    return Figure(
        "store_sqlite",
        f"Store, SQLite: {len(batch):,} events recorded and deduplicated",
        "every duplicate dropped; report events/s",
        f"{rate:,.0f} events/s ({ratio(rate, raw_rate):.2f}x a raw insert loop); "
        f"{dropped} of {dups} duplicates dropped",
        correct,
        note,
        data,
    )


async def _pg_raw_run(url: str, batch: list[Event]) -> float:
    """The floor on Postgres: one INSERT per event on one connection, autocommit, no dedupe logic."""
    import asyncpg

    db = await asyncpg.connect(url)
    try:
        await db.execute("CREATE TABLE IF NOT EXISTS ev (event_id TEXT PRIMARY KEY, body TEXT)")
        began = time.perf_counter()
        for event in batch:
            await db.execute(
                "INSERT INTO ev VALUES ($1, $2) ON CONFLICT DO NOTHING", event.turn.event_id, event.turn.text
            )
        return time.perf_counter() - began
    finally:
        await db.close()


def postgres(opts: Options) -> Figure:
    """The same 10,000 events on a throwaway PostgreSQL from this machine's binaries (tests/pg.py)."""
    from tests.pg import PgServer

    server = PgServer.find()
    if server is None:
        return not_measured("store_postgres", "Store, Postgres", "report events/s", "no PostgreSQL binaries here")
    server.start()
    try:
        batch = events(opts.store_events, opts.store_duplicates)
        dups = sum(e.duplicate for e in batch)
        raw = asyncio.run(_pg_raw_run(server.create_database("raw"), batch))
        elapsed, accepted, dropped, kept = asyncio.run(_store_run(server.create_database("store"), batch))
    finally:
        server.stop()
    rate, raw_rate = len(batch) / elapsed, len(batch) / raw
    correct = accepted == len(batch) - dups and dropped == dups and kept == 0
    return Figure(
        "store_postgres",
        f"Store, Postgres: {len(batch):,} events recorded and deduplicated",
        "every duplicate dropped; report events/s",
        f"{rate:,.0f} events/s ({ratio(rate, raw_rate):.2f}x a raw insert loop); "
        f"{dropped} of {dups} duplicates dropped",
        correct,
        "The same events as for SQLite, one `accept_turn` after another, on a throwaway PostgreSQL 15 on loopback. "
        "Baseline in the same run: one raw INSERT per event on one connection.",
        {
            "events": len(batch),
            "duplicates": dups,
            "accepted": accepted,
            "duplicates_dropped": dropped,
            "events_per_s": round(rate),
            "raw_insert_events_per_s": round(raw_rate),
        },
    )


async def _fill(store: Store, backlog: int, channel: str) -> None:
    """`backlog` unfinished turns queued in one binding (not timed)."""
    for i in range(backlog):
        turn = Turn("T0123ABCD", channel, f"1600000000.{i:06d}", f"1600000000.{i:06d}", "U1", f"queued {i}", f"Q{i}")
        await store.accept_turn(turn, f"otid-q{i}")


async def _cycles(urls: dict[int, str], cycles: int) -> dict[str, dict[str, list[float]]]:
    """Per turn, what the relay asks the store: accept a new turn, then take the binding's next one (timed);
    finish it, so the backlog stays the same (not timed). Two stores, a short and a long backlog, alternating
    turn by turn so that both see the same machine noise. The old way, listing the binding's unfinished turns,
    is timed alongside for the record."""
    stores = {}
    for size, url in urls.items():
        store = open_store(url)
        await store.open()
        await _fill(store, size, "CBACKLOG1")
        stores[size] = store
    times: dict[str, dict[str, list[float]]] = {str(s): {"accept": [], "next": [], "list": []} for s in stores}
    try:
        for i in range(cycles):
            for size, store in stores.items():
                turn = Turn(
                    "T0123ABCD", "CBACKLOG1", f"1700000000.{i:06d}", f"1700000000.{i:06d}", "U1", "new", f"N{i}"
                )
                began = time.perf_counter()
                await store.accept_turn(turn, f"otid-n{i}")
                accepted = time.perf_counter()
                pending = await store.next_turn("T0123ABCD", "CBACKLOG1")
                took = time.perf_counter()
                assert pending is not None
                await store.finish_turn(pending.turn_id, "done")
                if i % 10 == 0:
                    listed = time.perf_counter()
                    await store.unfinished_turns("T0123ABCD", "CBACKLOG1")
                    times[str(size)]["list"].append(time.perf_counter() - listed)
                times[str(size)]["accept"].append(accepted - began)
                times[str(size)]["next"].append(took - accepted)
    finally:
        for store in stores.values():
            await store.close()
    return times


def _backlog_figure(key: str, backend: str, opts: Options, times: dict[str, dict[str, list[float]]]) -> Figure:
    short, long = "10", str(opts.store_backlog)
    per_turn = {
        size: statistics.median(a + n for a, n in zip(times[size]["accept"], times[size]["next"], strict=True))
        for size in (short, long)
    }
    r = ratio(per_turn[long], per_turn[short])
    listing = {size: statistics.median(times[size]["list"]) for size in (short, long)}
    data = {
        "cycles": opts.store_cycles,
        "per_turn_ms_median": {size: round(v * 1000, 3) for size, v in per_turn.items()},
        "accept_ms": {size: summary(times[size]["accept"], 1000) for size in (short, long)},
        "next_turn_ms": {size: summary(times[size]["next"], 1000) for size in (short, long)},
        "listing_the_queue_ms_median": {size: round(v * 1000, 3) for size, v in listing.items()},
    }
    note = (
        f"{opts.store_cycles} turns through each of two stores whose binding has {short} and {int(long):,} turns "
        "queued, "
        f"alternating: `accept_turn` of a new turn plus `next_turn` (the binding's oldest, one indexed row) per turn, "
        f"median {per_turn[short] * 1000:.3f} ms and {per_turn[long] * 1000:.3f} ms. For the record, listing the "
        f"binding's unfinished turns (what each mention and each turn used to do) takes {listing[short] * 1000:.2f} ms "
        f"and {listing[long] * 1000:.2f} ms."
    )
    return Figure(
        key,
        f"Store, {backend}: accept + next turn with {int(long):,} turns queued vs {short}",
        f"ratio ≤ {BACKLOG_RATIO:g}",
        f"{r:.2f} ({per_turn[long] * 1000:.3f} ms vs {per_turn[short] * 1000:.3f} ms)",
        r <= BACKLOG_RATIO,
        note,
        data,
    )


def backlog_sqlite(opts: Options) -> Figure:
    folder = opts.out / "store-backlog"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db*"):
        stale.unlink()
    urls = {size: f"sqlite:///{folder}/backlog-{size}.db" for size in (10, opts.store_backlog)}
    times = asyncio.run(_cycles(urls, opts.store_cycles))
    return _backlog_figure("store_backlog_sqlite", "SQLite", opts, times)


def backlog_postgres(opts: Options) -> Figure:
    from tests.pg import PgServer

    server = PgServer.find()
    title = "Store, Postgres: accept + next turn, long queue vs short"
    if server is None:
        return not_measured("store_backlog_postgres", title, f"ratio ≤ {BACKLOG_RATIO:g}", "no PostgreSQL binaries")
    server.start()
    try:
        urls = {size: server.create_database(f"backlog{size}") for size in (10, opts.store_backlog)}
        times = asyncio.run(_cycles(urls, opts.store_cycles))
    finally:
        server.stop()
    return _backlog_figure("store_backlog_postgres", "Postgres", opts, times)
