"""Many channels at once, one busy channel, memory with many turns in flight, start-up time."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from pathlib import Path
from typing import Any

from bench.fakes_proc import Crew, FakesProcess, Post, Span
from bench.floor import floor_fanout
from bench.load import Outcome, burst, in_turn, mentions, open_loop
from bench.report import Figure
from bench.stage import Options, Stage, fakes, relay, server, stage
from bench.stats import in_order, ratio
from bridge.config import Settings

FANOUT_RATIO = 1.15
BUSY_RATIO = 1.1
RSS_MB = 150.0
START_SECONDS = 2.0
NOTICE_CALLS = 10

DEFAULT_LIMIT = Settings.model_fields["max_concurrent_turns"].default


def letta_seconds(spans: list[Span], crew: Crew) -> float:
    """The time Letta spent on a crew's agents (gaps between sends excluded): its turns' Letta time."""
    ids = {agent_id for agent_id, _ in crew.agents}
    return sum((end or start) - start for agent_id, _, start, end in spans if agent_id in ids)


def peak_overlap(spans: list[Span]) -> int:
    """How many agent turns Letta was running at once, at most."""
    edges = sorted([(s, 1) for _, _, s, _ in spans] + [(e, -1) for _, _, _, e in spans if e is not None])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def _warm(st: Stage) -> int:
    """One instant turn on the spare crew: Bolt's auth.test, Letta's version and the speaker's name cached."""
    spare = st.crews[-1]
    st.fakes.call("set_delay", [a for a, _ in spare.agents], 0.0)
    delivery = mentions([spare.channel], 1, "warm-up")
    asyncio.run(in_turn(st.bridge.url, delivery))
    st.fakes.wait_done([(spare.channel, delivery[0].ts)], 30)
    return int(st.fakes.call("post_count"))


def _delays(runner: str, opts: Options) -> float:
    """Per-agent Letta delay: a group send takes `fanout_server_turn` in all; an agent send `fanout_agent_delay`."""
    return opts.fanout_server_turn / 2 if runner == "server" else opts.fanout_agent_delay


def _timeline(began: float, outcomes: list[Outcome], spans: list[Span], crews: list[Crew]) -> dict[str, float]:
    """Seconds from the first mention sent to: the last ack, the last turn's first Letta send, Letta's last answer."""
    firsts = []
    for crew in crews:
        ids = {agent_id for agent_id, _ in crew.agents}
        starts = [start for agent_id, _, start, _ in spans if agent_id in ids]
        if starts:
            firsts.append(min(starts))
    ends = [
        end
        for agent_id, _, _, end in spans
        if end is not None and any(agent_id == a for c in crews for a, _ in c.agents)
    ]
    return {
        "last_ack": round(max(o.sent + o.latency for o in outcomes) - began, 3),
        "last_turn_reached_letta": round(max(firsts, default=began) - began, 3),
        "last_letta_answer": round(max(ends, default=began) - began, 3),
    }


def _bare_burst(proc: FakesProcess, channels: list[str], folder: Path) -> float:
    """Seconds until a bare slack-bolt app has acknowledged one mention per channel, all sent at once."""
    bare = server("bare", proc, folder)
    bare.start()
    try:
        asyncio.run(in_turn(bare.url, mentions(channels[:3], 3, "warm-up")))
        began = time.monotonic()
        outcomes = asyncio.run(burst(bare.url, mentions(channels, len(channels))))
        return max(o.sent + o.latency for o in outcomes) - began
    finally:
        bare.stop()


def _relay_burst(proc: FakesProcess, crews: list[Crew], runner: str, folder: Path) -> dict[str, float]:
    """The same burst given to the simplest complete app (`bench/relay_app.py`): seconds from the first mention
    to its last ack and to its last post."""
    app = relay(proc, crews, runner, folder)
    app.start()
    try:
        asyncio.run(in_turn(app.url, mentions(["CWARMUP"], 3, "warm-up")))  # a channel it has no crew for
        before = int(proc.call("post_count"))
        began = time.monotonic()
        outcomes = asyncio.run(burst(app.url, mentions([c.channel for c in crews], len(crews))))
        proc.wait_posts(before + 2 * len(crews), 120)
        posts: list[Post] = proc.posts(before)
    finally:
        app.stop()
    return {
        "last_ack": round(max(o.sent + o.latency for o in outcomes) - began, 3),
        "last_post": round(max(p.at for p in posts) - began, 3) if len(posts) >= 2 * len(crews) else float("inf"),
    }


def fanout(opts: Options, runner: str, limit: int | None) -> Figure:
    """One mention in each of many channels at once; `limit` is MAX_CONCURRENT_TURNS (None: the bridge's default)."""
    extra = {"MAX_CONCURRENT_TURNS": str(limit)} if limit else {}
    n = opts.fanout_channels
    name = f"fanout-{runner}" + ("" if limit else "-default")
    with stage(name, runner, opts, channels=n + 1, delay=_delays(runner, opts), env=extra) as st:
        before = _warm(st)
        crews = st.crews[:-1]
        deliveries = mentions([c.channel for c in crews], n)
        began = time.monotonic()
        outcomes = asyncio.run(burst(st.bridge.url, deliveries))
        got = st.fakes.wait_posts(before + 2 * n, 600) - before
        posts: list[Post] = st.fakes.posts(before)
        spans: list[Span] = st.fakes.call("letta_spans")
        st.fakes.wait_done([(d.channel, d.ts) for d in deliveries], 60)
        floor = asyncio.run(floor_fanout(st.fakes, crews, runner))
        bare_acks = _bare_burst(st.fakes, [c.channel for c in crews], opts.out / name / "bare")
        simplest = _relay_burst(st.fakes, crews, runner, opts.out / name / "relay")
    wall = max(p.at for p in posts) - began if posts else float("inf")
    turn = statistics.median(letta_seconds(spans, c) for c in crews)
    r = ratio(wall, turn)
    timeline = _timeline(began, outcomes, spans, crews)
    timeline["bare_app_last_ack"] = round(bare_acks, 3)
    timeline["simplest_app_last_ack"] = simplest["last_ack"]
    timeline["simplest_app_last_post"] = simplest["last_post"]
    setting = f"MAX_CONCURRENT_TURNS={limit or DEFAULT_LIMIT}" + ("" if limit else ", the default")
    data: dict[str, Any] = {
        "channels": n,
        "setting": setting,
        "posts": got,
        "posts_expected": 2 * n,
        "wall_s": round(wall, 3),
        "letta_turn_s_median": round(turn, 3),
        "floor_s": round(floor, 3),
        "simplest_app_ratio": round(ratio(simplest["last_post"], turn), 3),
        "timeline_s": timeline,
        "letta_peak_concurrent_agent_turns": peak_overlap(spans),
        "acks_not_200": sum(o.status != 200 for o in outcomes),
    }
    t = timeline
    note = (
        f"{n} channels, each bound to its own 2-agent group, one mention each sent at once. Baseline: one turn's "
        f"Letta time as the fake Letta measured it (median {turn:.2f} s). At most "
        f"{data['letta_peak_concurrent_agent_turns']} agent turns ran in Letta at once. From the first mention: "
        f"last ack {t['last_ack']:.2f} s (a bare slack-bolt app: {bare_acks:.2f} s), last turn reached Letta "
        f"{t['last_turn_reached_letta']:.2f} s, Letta's last answer {t['last_letta_answer']:.2f} s, last post "
        f"{wall:.2f} s. Floor: the same calls for all {n} turns made at once by the bench itself took {floor:.2f} s "
        f"({ratio(floor, turn):.2f}x). The simplest complete app (`bench/relay_app.py`: records each event, "
        f"acknowledges, then makes the same calls in a task, a channel's turns one at a time, no journal or "
        f"once-only) given the same burst: last ack "
        f"{simplest['last_ack']:.2f} s, last post {simplest['last_post']:.2f} s ({data['simplest_app_ratio']:.2f}x)."
    )
    key = f"fanout_{runner}" + ("" if limit else "_default_limit")
    return Figure(
        key,
        f"Fan-out, {runner} runner: {n} groups at once ({setting})",
        f"≤ {FANOUT_RATIO:g}x one turn's Letta time",
        f"{r:.2f}x ({wall:.2f} s vs {turn:.2f} s)" + ("" if got >= 2 * n else f", {got} posts"),
        got >= 2 * n and r <= FANOUT_RATIO,
        note,
        data,
    )


def _thread_order(posts: list[Post], channel: str) -> list[str]:
    order: list[str] = []
    # Agents' replies only: the bridge's own notices ("Queued: ...") go to a thread when it is accepted.
    for post in sorted((p for p in posts if p.channel == channel and p.username), key=lambda p: p.at):
        if not order or order[-1] != post.thread_ts:
            order.append(post.thread_ts)
    return order


def busy(opts: Options, runner: str) -> Figure:
    n = opts.busy_mentions
    with stage(f"busy-{runner}", runner, opts, channels=2, delay=opts.busy_agent_delay) as st:
        before = _warm(st)
        crew = st.crews[0]
        deliveries = mentions([crew.channel], n)
        began = time.monotonic()
        outcomes = asyncio.run(in_turn(st.bridge.url, deliveries))
        deadline = time.monotonic() + 60 + 4 * n * opts.busy_agent_delay
        while True:  # agents' replies only: "Queued: ..." notices are posts too
            posts: list[Post] = [p for p in st.fakes.posts(before) if p.username]
            if len(posts) >= 2 * n or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        got = before + len(posts)
        spans: list[Span] = st.fakes.call("letta_spans")
    wall = max(p.at for p in posts) - began if posts else float("inf")
    letta = letta_seconds(spans, crew)
    r = ratio(wall, letta)
    ordered = in_order([d.ts for d in deliveries], _thread_order(posts, crew.channel))
    data = {
        "mentions": n,
        "posts": got - before,
        "wall_s": round(wall, 3),
        "letta_s": round(letta, 3),
        "in_order": ordered,
        "acks_not_200": sum(o.status != 200 for o in outcomes),
    }
    note = (
        f"{n} mentions sent one after another to one channel; Letta takes {opts.busy_agent_delay:g} s per agent "
        f"(2 agents). Baseline: the Letta time of those {n} turns as the fake measured it ({letta:.2f} s)."
    )
    return Figure(
        f"busy_{runner}",
        f"One busy group, {runner} runner: {n} mentions in a row",
        f"in order, ≤ {BUSY_RATIO:g}x {n} Letta turns",
        f"{'in order' if ordered else 'OUT OF ORDER'}, {r:.3f}x ({wall:.2f} s vs {letta:.2f} s)",
        ordered and r <= BUSY_RATIO and got - before >= 2 * n,
        note,
        data,
    )


def notices(opts: Options) -> Figure:
    """Mentions queued in one thread behind a turn that holds the channel: the Slack calls of its queue notice."""
    n = opts.notice_mentions
    with stage("notices", "bridge", opts, channels=2) as st:
        _warm(st)
        crew = st.crews[0]
        ids = [a for a, _ in crew.agents]
        st.fakes.call("set_delay", ids[:1], 2.0)  # the thread's first turn holds the channel
        [root] = mentions([crew.channel], 1, "first")
        asyncio.run(in_turn(st.bridge.url, [root]))
        time.sleep(0.3)
        st.fakes.call("set_delay", ids, opts.notice_agent_delay)
        deliveries = mentions([crew.channel], n, "and also", thread_ts=root.ts)
        began = time.monotonic()
        outcomes = asyncio.run(open_loop(st.bridge.url, deliveries, opts.ack_rate))
        done = st.fakes.wait_done(
            [(d.channel, d.ts) for d in [root, *deliveries]], 60 + 10 * n * opts.notice_agent_delay
        )
        drained = time.monotonic() - began
        calls = st.fakes.call("notice_calls", crew.channel, root.ts)
        spans: list[Span] = st.fakes.call("letta_spans")
    total = calls["posts"] + calls["edits"]
    asked = [int(m[-1]) for _, text, _, _ in spans if (m := re.findall(r"and also #(\d+)", text))]
    ordered = asked[::2] == list(range(n)) == asked[1::2]  # each mention to both agents, in the order sent
    data = {
        "queued_mentions": n,
        "turns_done": done,
        "in_order": ordered,
        "notice_posts": calls["posts"],
        "notice_edits": calls["edits"],
        "drain_s": round(drained, 2),
        "acks_not_200": sum(o.status != 200 for o in outcomes),
    }
    note = (
        f"{n} mentions sent at {opts.ack_rate:g}/s into one thread while its first turn holds the channel for 2 s; "
        f"then each agent answers in {opts.notice_agent_delay:g} s, and the queue drained {drained:.1f} s after the "
        f"burst began. Baseline: one notice per queued mention, as before, is {n} calls. The thread's one notice was "
        f"posted {calls['posts']} time(s) and edited {calls['edits']} times; all {done} turns finished."
    )
    return Figure(
        "notice_calls",
        f"Slack calls for {n} queued mentions in one thread",
        f"≤ {NOTICE_CALLS}",
        f"{total} calls ({calls['posts']} post, {calls['edits']} edits; {n} before)",
        total <= NOTICE_CALLS and done == n + 1 and ordered,
        note,
        data,
    )


def _settle(proc: FakesProcess, want: int, timeout: float, base: int = 0) -> int:
    """Wait until Letta has `want` sends, or their count, once past `base`, stops growing for 3 seconds (turns
    that first look their group up reach Letta's send route only after those lookups)."""
    deadline = time.monotonic() + timeout
    last, still = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = int(proc.call("letta_send_count"))
        if count >= want:
            return count
        if count != last:
            last, still = count, time.monotonic()
        elif count > base and time.monotonic() - still > 3.0:
            return count
        time.sleep(0.1)
    return last


def _in_flight(opts: Options, runner: str, name: str, **env: str) -> tuple[dict[str, int], dict[str, int], int, int]:
    """Resident memory idle and with `opts.memory_turns` turns held at Letta; (idle, loaded, sends, acks not 200)."""
    n = opts.memory_turns
    extra = {"MAX_CONCURRENT_TURNS": str(n), **env}
    with stage(name, runner, opts, channels=n + 1, delay=3600.0, kill=True, env=extra) as st:
        _warm(st)
        idle = st.bridge.rss_kib()
        warm_sends = int(st.fakes.call("letta_send_count"))
        outcomes = asyncio.run(burst(st.bridge.url, mentions([c.channel for c in st.crews[:-1]], n)))
        sends = _settle(st.fakes, warm_sends + n, 60, base=warm_sends) - warm_sends
        time.sleep(1.0)
        loaded = st.bridge.rss_kib()
    return idle, loaded, sends, sum(o.status != 200 for o in outcomes)


def memory(opts: Options, runner: str = "bridge") -> Figure:
    n = opts.memory_turns
    idle, loaded, sends, not_200 = _in_flight(opts, runner, "memory")
    # HTTP_INGRESS=process, not the default: what its own process costs, reported beside the figure.
    _, by_process, _, _ = _in_flight(opts, runner, "memory-ingress-process", HTTP_INGRESS="process")
    mb = loaded["VmRSS"] / 1024
    peak = loaded["VmHWM"] / 1024
    idle_mb = idle["VmRSS"] / 1024
    data = {
        "turns": n,
        "acks_not_200": not_200,
        "letta_sends_in_flight": sends,
        "idle_rss_mb": round(idle_mb, 1),
        "loaded_rss_mb": round(mb, 1),
        "peak_rss_mb": round(peak, 1),
        "kib_per_turn": round((loaded["VmRSS"] - idle["VmRSS"]) / n, 1),
        "with_ingress_process_mb": round(by_process["VmRSS"] / 1024, 1),
        "ingress_process_private_mb": round(by_process.get("children_private", 0) / 1024, 1),
    }
    note = (
        f"{n} channels, one mention each, Letta holding every send (MAX_CONCURRENT_TURNS={n}, {runner} runner); "
        f"{sends} Letta sends were open when measured. Baseline: the same process idle after one turn, "
        f"{idle_mb:.1f} MB; {data['kib_per_turn']} KiB per turn in flight. The bridge is killed afterwards. "
        f"With HTTP_INGRESS=process (not the default) the same load took {data['with_ingress_process_mb']} MB: the "
        f"bridge process's resident memory plus the {data['ingress_process_private_mb']} MB its ingress process "
        f"holds alone (forked, it shares the rest of its pages with the bridge)."
    )
    return Figure(
        "memory",
        f"Resident memory with {n} turns in flight",
        f"< {RSS_MB:g} MB",
        f"{mb:.1f} MB (peak {peak:.1f} MB, idle {idle_mb:.1f} MB, {ratio(mb, idle_mb):.2f}x idle)"
        + (f", {data['acks_not_200']} of {n} acks not 200" if data["acks_not_200"] else ""),
        peak < RSS_MB and data["acks_not_200"] == 0,
        note,
        data,
    )


def startup(opts: Options) -> Figure:
    """Spawn to the first 200 on /healthz, the bridge vs the bare Bolt app, alternating, median of the runs."""
    times: dict[str, list[float]] = {"bridge": [], "bare": []}
    with fakes("bridge") as proc:
        for i in range(opts.startup_runs):
            for kind in ("bare", "bridge"):
                target = server(kind, proc, opts.out / "startup" / f"{kind}-{i}")
                times[kind].append(target.start())
                target.stop()
    bridge = statistics.median(times["bridge"])
    bare = statistics.median(times["bare"])
    data = {k: [round(t, 3) for t in v] for k, v in times.items()}
    note = (
        f"Median of {opts.startup_runs} starts each, alternating with a bare slack-bolt app served the same way "
        f"({bare:.2f} s); the bridge's starts create and migrate a fresh SQLite file."
    )
    return Figure(
        "startup",
        "Start to a 200 on /healthz",
        f"< {START_SECONDS:g} s",
        f"{bridge:.2f} s ({ratio(bridge, bare):.2f}x the bare app)",
        bridge < START_SECONDS,
        note,
        data,
    )
