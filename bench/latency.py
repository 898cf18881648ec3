"""Acknowledgement under sustained load, the bridge's own overhead per turn, time to first reply."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.fakes_proc import Crew, FakesProcess, Post, Span
from bench.floor import floor_turn
from bench.load import Outcome, in_turn, mentions, open_loop, send
from bench.procs import Server, bind, cpu_seconds
from bench.report import Figure
from bench.stage import Options, fakes, relay, server, stage
from bench.stats import percentile, ratio, summary

ACK_P99_MS = 50.0
ACK_RATIO = 1.5
BURST_P99_MS = 20.0
OVERHEAD_P50_MS = 10.0
FIRST_REPLY_MS = 100.0
WARMUP = 20


def _load(target: Server, channels: list[str], opts: Options, seconds: float) -> list[Outcome]:
    """Warm the server up (Bolt's auth.test, first connections), then the measured open-loop run."""
    asyncio.run(in_turn(target.url, mentions(channels, WARMUP, "warm-up")))
    deliveries = mentions(channels, int(opts.ack_rate * seconds))
    return asyncio.run(open_loop(target.url, deliveries, opts.ack_rate))


def _ack_data(outcomes: list[Outcome], seconds: float) -> dict[str, Any]:
    ok = [o for o in outcomes if o.status == 200]
    return {
        "requests": len(outcomes),
        "not_200": len(outcomes) - len(ok),
        "offered_per_s": round(len(outcomes) / seconds, 1) if seconds else 0,
        "latency_ms": summary([o.latency for o in ok], 1000),
        "generator_lateness_ms": summary([o.late for o in outcomes], 1000),
    }


def _bridge_run(
    proc: FakesProcess, crews: list[Crew], folder: Path, opts: Options, seconds: float, drain: bool, **env: str
) -> dict[str, Any]:
    """The bridge under the open-loop load, with the CPU each process used (its ingress process's too, with
    HTTP_INGRESS=process); `drain` waits for every turn."""
    bridge = server("bridge", proc, folder, **env)
    bind(Path(bridge.env["DATABASE_URL"].removeprefix("sqlite:///")), crews)
    bridge.start()
    # The bridge's CPU is its ingress process's too; the generator (this process) is itself alone, not its children.
    used: dict[str, Callable[[], float]] = {
        "bridge": bridge.cpu_seconds,
        "fakes": lambda: cpu_seconds(proc.pid),
        "generator": lambda: cpu_seconds(os.getpid()),
    }
    try:
        done_before = int(proc.call("done_count"))
        cpu = {k: f() for k, f in used.items()}
        outcomes = _load(bridge, [c.channel for c in crews], opts, seconds)
        load_end = time.monotonic()
        data = _ack_data(outcomes, seconds)
        data["cpu_share_of_one_core"] = {k: round((f() - cpu[k]) / seconds, 2) for k, f in used.items()}
        data["turns_done_at_load_end"] = int(proc.call("done_count")) - done_before
        if drain:
            expected = done_before + len(outcomes) + WARMUP
            done = proc.call("wait_done_count", expected, opts.drain_timeout, timeout=opts.drain_timeout + 30)
            data["turns_done"] = int(done) - done_before
            data["turns_expected"] = expected - done_before
            data["drain_seconds_after_load"] = round(time.monotonic() - load_end, 2)
            data["cpu_ms_per_turn"] = round(
                (bridge.cpu_seconds() - cpu["bridge"]) * 1000 / max(1, data["turns_done"]), 2
            )
        data["rss_kib"] = bridge.rss_kib()
    finally:
        bridge.stop(kill=not drain)
    return data


def _baseline(
    proc: FakesProcess, kind: str, crews: list[Crew], folder: Path, opts: Options, seconds: float, **env: str
) -> Any:
    """A baseline server (null, bare, recording, or relay: the simplest complete app) under the same open-loop
    load as the bridge, with the CPU it used."""
    baseline = relay(proc, crews, opts.ack_runner, folder) if kind == "relay" else server(kind, proc, folder, **env)
    baseline.start()
    try:
        cpu = baseline.cpu_seconds()
        data = _ack_data(_load(baseline, [c.channel for c in crews], opts, seconds), seconds)
        used = baseline.cpu_seconds() - cpu
        data["cpu_share_of_one_core"] = round(used / seconds, 2)
        data["cpu_ms_per_event"] = round(used * 1000 / (data["requests"] + WARMUP), 2)
        return data
    finally:
        baseline.stop()


BUSY_CORE = "while True:\n    sum(range(1000))\n"


def _recording_beside_busy_core(
    proc: FakesProcess, crews: list[Crew], folder: Path, opts: Options, seconds: float, where: str
) -> Any:
    """The recording app under the same load with one core kept busy beside it: by a process of its own
    (`where="process"`: the turns' work on a core the app does not share an interpreter with), or by a thread of
    the app's own process (`"thread"`: sharing its interpreter lock, as the bridge's turns share it with its
    acknowledgements). What this machine leaves an app that only acknowledges, when another core's worth of work
    runs beside it."""
    if where == "thread":
        return _baseline(proc, "recording", crews, folder / "busy-thread", opts, seconds, BENCH_BUSY_THREAD="1")
    busy = subprocess.Popen([sys.executable, "-c", BUSY_CORE])
    try:
        return _baseline(proc, "recording", crews, folder / "busy-process", opts, seconds)
    finally:
        busy.kill()
        busy.wait()


def ack(opts: Options) -> list[Figure]:
    """p99 time to answer Slack at a sustained rate, mentions spread over many channels: the bridge vs an app
    that durably records each event in SQLite (the floor for an app that loses nothing), vs a bare Bolt app,
    vs a null server, same run.

    A last, shorter run sends to channels whose Letta never answers, so no turn gets past its first send:
    the acknowledgement path alone, without the turns' work competing for the bridge's one event loop.
    """
    data: dict[str, Any] = {"rate_per_s": opts.ack_rate, "seconds": opts.ack_seconds, "runner": opts.ack_runner}
    folder = opts.out / "ack"
    with fakes(opts.ack_runner) as proc:
        crews = proc.crews("ACK", opts.ack_channels, 2, 0.0)
        for kind, seconds in (
            ("null", opts.null_seconds),
            ("bare", opts.ack_seconds),
            ("recording", opts.ack_seconds),
            ("relay", opts.ack_seconds),
        ):
            data[kind] = _baseline(proc, kind, crews, folder, opts, seconds)
        if opts.ack_isolated_seconds > 0:
            for where in ("process", "thread"):
                data[f"recording_beside_busy_{where}"] = _recording_beside_busy_core(
                    proc, crews, folder, opts, opts.ack_isolated_seconds, where
                )
        data["bridge"] = _bridge_run(proc, crews, folder, opts, opts.ack_seconds, drain=True)
        data["bridge_ingress_process"] = _bridge_run(
            proc, crews, opts.out / "ack-process", opts, opts.ack_seconds, drain=True, HTTP_INGRESS="process"
        )
        if opts.ack_isolated_seconds > 0:
            parked = proc.crews("ACP", opts.ack_channels, 2, 3600.0)
            data["bridge_turns_parked"] = _bridge_run(
                proc, parked, opts.out / "ack-parked", opts, opts.ack_isolated_seconds, drain=False
            )
    bridge = data["bridge"]
    p99 = bridge["latency_ms"]["p99"]
    bare, null = data["bare"]["latency_ms"]["p99"], data["null"]["latency_ms"]["p99"]
    recording = data["recording"]["latency_ms"]["p99"]
    simplest = data["relay"]["latency_ms"]["p99"]
    load = f"{opts.ack_rate:g} events/s over {opts.ack_channels} channels for {opts.ack_seconds:g} s"
    cpu = bridge["cpu_share_of_one_core"]
    note = (
        f"Open-loop generator (aiohttp, pre-signed bodies) in the bench process; the fakes in a process of their own. "
        f"Generator floor, a raw aiohttp server on the same schedule: p99 {null:.2f} ms; the generator left p99 "
        f"{bridge['generator_lateness_ms']['p99']:.2f} ms behind its schedule. Mentions go to {opts.ack_channels} "
        f"bound channels ({opts.ack_runner} runner, Letta instant): {bridge['turns_done_at_load_end']} turns had "
        f"finished when the load stopped, all {bridge.get('turns_done')} of {bridge.get('turns_expected')} "
        f"{bridge.get('drain_seconds_after_load')} s later. CPU (share of one core) bridge {cpu['bridge']}, fakes "
        f"{cpu['fakes']}, generator {cpu['generator']}. Baselines under the same load: the recording app (a bare "
        f"Bolt app writing each event to SQLite before its ack, `bench/recording_app.py`) p99 {recording:.2f} ms, "
        f"the bare Bolt app p99 {bare:.2f} ms. The simplest complete app (`bench/relay_app.py`: the recording app, "
        f"then the same Letta calls and posts in a task, a channel's turns one at a time, no journal or once-only) "
        f"p99 {simplest:.2f} ms "
        f"({ratio(simplest, recording):.2f}x the recording app). CPU per turn, all threads, from the start of the "
        f"load to the last turn done: the bridge {bridge.get('cpu_ms_per_turn')} ms, the simplest complete app "
        f"{data['relay']['cpu_ms_per_event']} ms (the recording app {data['recording']['cpu_ms_per_event']} ms an "
        f"event)."
    )
    alone = data.get("bridge_turns_parked")
    if alone:
        note += (
            f" With every turn parked at its first Letta send ({opts.ack_isolated_seconds:g} s run), the bridge "
            f"acknowledges at p99 {alone['latency_ms']['p99']:.2f} ms "
            f"({ratio(alone['latency_ms']['p99'], recording):.2f}x the recording app)."
        )
    by_process = data["bridge_ingress_process"]
    note += (
        f" With HTTP_INGRESS=process (not the default: the ingress in a process of its own, no interpreter lock "
        f"shared with the turns) the same load was acknowledged at p99 {by_process['latency_ms']['p99']:.2f} ms "
        f"({ratio(by_process['latency_ms']['p99'], recording):.2f}x the recording app), CPU per turn "
        f"{by_process.get('cpu_ms_per_turn')} ms, both processes."
    )
    beside = {w: data.get(f"recording_beside_busy_{w}") for w in ("process", "thread")}
    if beside["process"] and beside["thread"]:
        by_process, by_thread = (beside[w]["latency_ms"]["p99"] for w in ("process", "thread"))
        note += (
            f" What the machine leaves: the recording app itself, with one core kept busy beside it (the bridge's "
            f"turns kept {cpu['bridge']} of a core busy), acknowledges at p99 {by_process:.2f} ms "
            f"({ratio(by_process, recording):.2f}x) when the busy core is another process's, and {by_thread:.2f} ms "
            f"({ratio(by_thread, recording):.2f}x) when it is a thread of its own process, sharing the interpreter "
            f"lock as the bridge's turns share it with its acknowledgements ({opts.ack_isolated_seconds:g} s runs)."
        )
    errors = bridge["not_200"]
    to_recording, to_bare = ratio(p99, recording), ratio(p99, bare)
    return [
        Figure(
            "ack_p99",
            f"Acknowledgement p99, {load}",
            f"< {ACK_P99_MS:g} ms",
            f"{p99:.2f} ms (p50 {bridge['latency_ms']['p50']:.2f} ms, {errors} not 200)",
            p99 < ACK_P99_MS and errors == 0,
            note,
            data,
        ),
        Figure(
            "ack_vs_recording",
            f"Acknowledgement p99 vs an app recording each event in SQLite, {opts.ack_channels} channels",
            f"≤ {ACK_RATIO:g}x",
            f"{to_recording:.2f}x ({p99:.2f} ms vs {recording:.2f} ms)",
            to_recording <= ACK_RATIO,
        ),
        Figure(
            "ack_vs_bare",
            "Acknowledgement p99 vs a bare slack-bolt app",
            f"≤ {ACK_RATIO:g}x",
            f"{to_bare:.2f}x ({p99:.2f} ms vs {bare:.2f} ms)",
            to_bare <= ACK_RATIO,
        ),
    ]


def burst(opts: Options) -> Figure:
    """Mentions into one channel faster than its agents answer (Letta instant, yet one turn at a time): the
    channel's backlog grows for the whole run. The acknowledgement must not slow down with it."""
    data: dict[str, Any] = {"rate_per_s": opts.ack_rate, "seconds": opts.ack_seconds, "runner": opts.ack_runner}
    folder = opts.out / "burst"
    with fakes(opts.ack_runner) as proc:
        [crew] = proc.crews("ACB", 1, 2, 0.0)
        data["recording"] = _baseline(proc, "recording", [crew], folder, opts, opts.ack_seconds)
        data["relay"] = _baseline(proc, "relay", [crew], folder, opts, opts.ack_seconds)
        posted = int(proc.call("post_count"))
        data["bridge"] = _bridge_run(proc, [crew], folder, opts, opts.ack_seconds, drain=False)
        data["notice_calls"] = proc.call("notice_calls", crew.channel)
        data["posts"] = int(proc.call("post_count")) - posted
        data["bridge_ingress_process"] = _bridge_run(
            proc, [crew], opts.out / "burst-process", opts, opts.ack_seconds, drain=False, HTTP_INGRESS="process"
        )
    bridge, recording = data["bridge"], data["recording"]["latency_ms"]["p99"]
    p99, errors = bridge["latency_ms"]["p99"], bridge["not_200"]
    r = ratio(p99, recording)
    sent = bridge["requests"] + WARMUP
    done = bridge["turns_done_at_load_end"]
    notices = data["notice_calls"]
    by_process = data["bridge_ingress_process"]["latency_ms"]["p99"]
    note = (
        f"{bridge['requests']} mentions at {opts.ack_rate:g}/s into one bound channel ({opts.ack_runner} runner, "
        f"Letta instant), each its own thread; the channel's turns run one at a time, so the backlog grew to "
        f"{sent - done} turns by the end ({done} done). Baseline in the same run: the recording app under the same "
        f"load, p99 {recording:.2f} ms; the simplest complete app (`bench/relay_app.py`, its turns one at a time too) "
        f"p99 {data['relay']['latency_ms']['p99']:.2f} ms ({ratio(data['relay']['latency_ms']['p99'], recording):.2f}x "
        f"the recording app). Meanwhile the bridge posted {notices['posts']} queue notices and edited "
        f"{notices['edits']} (at most one new notice a second in a channel). The bridge is killed afterwards. "
        f"With HTTP_INGRESS=process (not the default) the same load was acknowledged at p99 {by_process:.2f} ms "
        f"({ratio(by_process, recording):.2f}x the recording app)."
    )
    return Figure(
        "ack_one_channel",
        f"Acknowledgement p99, {opts.ack_rate:g} mentions/s into one channel for {opts.ack_seconds:g} s "
        "(backlog growing)",
        f"≤ {ACK_RATIO:g}x the recording baseline, and < {BURST_P99_MS:g} ms",
        f"{p99:.2f} ms, {r:.2f}x ({recording:.2f} ms)" + (f", {errors} not 200" if errors else ""),
        r <= ACK_RATIO and p99 < BURST_P99_MS and errors == 0,
        note,
        data,
    )


async def _overhead_loop(
    stage_url: str, proc: FakesProcess, crews: list[Crew], runner: str, turns: int
) -> tuple[list[float], list[float]]:
    """Alternates one measured bridge turn and one floor run, so both see the same machine noise."""
    bridge_times: list[float] = []
    floor_times: list[float] = []
    posted = int(proc.call("post_count"))
    agents = len(crews[0].agents)
    async with aiohttp.ClientSession() as client:
        for i, delivery in enumerate(mentions([c.channel for c in crews], turns)):
            began = time.monotonic()
            await send(client, f"{stage_url}/slack/events", delivery)
            proc.wait_done([(delivery.channel, delivery.ts)], 30)
            last = max(p.at for p in proc.posts(posted) if p.thread_ts == delivery.ts)
            bridge_times.append(last - began)
            posted += agents
            floor_times.append(await floor_turn(proc, crews[i % len(crews)], runner, client, i))
            posted += agents
    return bridge_times, floor_times


def overhead(opts: Options, runner: str) -> Figure:
    """Signed request to the last agent reply posted, Letta instant, 2-agent group, one turn at a time."""
    with stage(f"overhead-{runner}", runner, opts, channels=10) as st:
        url = st.bridge.url
        asyncio.run(in_turn(url, mentions([c.channel for c in st.crews], len(st.crews), "warm-up")))
        st.fakes.wait_posts(2 * len(st.crews), 30)
        user, kernel = st.bridge.cpu_split()
        bridge_times, floor_times = asyncio.run(_overhead_loop(url, st.fakes, st.crews, runner, opts.overhead_turns))
        user_after, kernel_after = st.bridge.cpu_split()
        cpu_ms = (user_after - user + kernel_after - kernel) * 1000 / opts.overhead_turns
        kernel_ms = (kernel_after - kernel) * 1000 / opts.overhead_turns
    p50 = percentile(bridge_times, 50) * 1000
    floor = percentile(floor_times, 50) * 1000
    data = {
        "bridge_ms": summary(bridge_times, 1000),
        "floor_ms": summary(floor_times, 1000),
        "bridge_cpu_ms_per_turn": round(cpu_ms, 2),
        "bridge_kernel_cpu_ms_per_turn": round(kernel_ms, 2),
    }
    note = (
        f"{opts.overhead_turns} turns, one at a time, each alternating with a floor run: the same reaction, Letta "
        f"send(s) and posts made directly on one keep-alive connection (p50 {floor:.2f} ms), i.e. the fakes' own "
        f"time. The bridge adds {p50 - floor:.2f} ms at the median over that floor ({ratio(p50, floor):.2f}x). "
        f"The bridge process used {cpu_ms:.2f} ms of CPU per turn ({kernel_ms:.2f} ms of it in the kernel; all its "
        "threads, the turn's end included), "
        "a steadier measure than the time on a shared machine."
    )
    return Figure(
        f"overhead_{runner}",
        f"Overhead, {runner} runner: signed request to last reply posted",
        f"p50 < {OVERHEAD_P50_MS:g} ms",
        f"p50 {p50:.2f} ms, p90 {data['bridge_ms']['p90']:.2f} ms (floor p50 {floor:.2f} ms)",
        p50 < OVERHEAD_P50_MS,
        note,
        data,
    )


def reply_lags(spans: list[Span], posts: list[Post], crews: list[Crew]) -> list[float]:
    """Per crew: seconds from Letta finishing the first agent's turn to that agent's first post in the channel.

    This is the time-to-first-reply figure once streaming lands: run a stage with streaming on, mention each
    crew once, and feed the fake Letta's spans and the fake Slack's posts here.
    """
    lags = []
    for crew in crews:
        agent_id, name = crew.agents[0]
        ends = [end for a, _, _, end in spans if a == agent_id and end is not None]
        if not ends:
            continue
        after = [p.at for p in posts if p.channel == crew.channel and p.username == name and p.at >= min(ends)]
        if after:
            lags.append(min(after) - min(ends))
    return lags


def first_reply(opts: Options, runner: str) -> Figure:
    """Streaming: each crew's first agent answers after 0.5 s and the second after 1.5 s more; the lag from
    the fake Letta finishing the first agent to that agent's reply in Slack, while the second still works."""
    with stage(f"first-{runner}", runner, opts, channels=10) as st:
        for crew in st.crews:
            st.fakes.call("set_delay", [crew.agents[0][0]], 0.5)
            st.fakes.call("set_delay", [crew.agents[1][0]], 1.5)
        asyncio.run(in_turn(st.bridge.url, mentions([c.channel for c in st.crews], len(st.crews))))
        st.fakes.wait_posts(2 * len(st.crews), 60)
        lags = reply_lags(st.fakes.call("letta_spans"), st.fakes.posts(), st.crews)
    p50, worst = percentile(lags, 50) * 1000, max(lags) * 1000
    return Figure(
        f"first_reply_{runner}",
        f"Time to first reply, {runner} runner (streaming)",
        f"≤ {FIRST_REPLY_MS:g} ms after Letta finishes that agent",
        f"p50 {p50:.1f} ms, max {worst:.1f} ms over {len(lags)} turns",
        worst <= FIRST_REPLY_MS,
        "The fake Letta records when each agent's turn ends; the fake Slack records when each post arrives. "
        "The second agent is still working for 1.5 s when the first agent's reply is posted.",
        {"lags_ms": summary(lags, 1000)},
    )


def first_draft(opts: Options) -> Figure:
    """Token streaming (bridge runner, 0.16.8 fake): each crew's first agent starts writing after 0.5 s, a word
    every 50 ms; the lag from the fake Letta sending that agent's first fragment to its draft opening in Slack."""
    env = {"LETTA_STREAM_TOKENS": "true"}
    with stage("draft-bridge", "bridge", opts, channels=10, env=env) as st:
        st.fakes.call("set_token_delay", 0.05)
        for crew in st.crews:
            st.fakes.call("set_delay", [crew.agents[0][0]], 0.5)
        asyncio.run(in_turn(st.bridge.url, mentions([c.channel for c in st.crews], len(st.crews))))
        st.fakes.call("wait_done_count", len(st.crews), 60)
        firsts: dict[str, float] = {}
        for agent_id, at in st.fakes.call("first_tokens"):
            firsts.setdefault(agent_id, at)
        drafts: list[Post] = st.fakes.call("drafts")
    lags = []
    for crew in st.crews:
        agent_id, name = crew.agents[0]
        opened = [d.at for d in drafts if d.channel == crew.channel and d.username == name]
        if agent_id in firsts and opened:
            lags.append(min(opened) - firsts[agent_id])
    p50, worst = percentile(lags, 50) * 1000, max(lags) * 1000
    return Figure(
        "first_draft_bridge",
        "Time to first draft, bridge runner (token streaming)",
        f"≤ {FIRST_REPLY_MS:g} ms after Letta's first token",
        f"p50 {p50:.1f} ms, max {worst:.1f} ms over {len(lags)} turns",
        worst <= FIRST_REPLY_MS and len(lags) == len(st.crews),
        "The fake Letta records when it sends each stream's first fragment; the fake Slack records when "
        "chat.startStream arrives. The reply then grows a word every 50 ms for about 2 s.",
        {"lags_ms": summary(lags, 1000)},
    )
