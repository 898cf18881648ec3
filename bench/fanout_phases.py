"""The fan-out burst broken into phases per turn, for alternated A/B runs (not a figure of results.json).

`python -m bench.fanout_phases bridge` (or `server`) gives the fan-out stage's burst to the bridge, then to the
simplest complete app, and prints for each the median and the worst turn of: when its first agent's send reached
Letta (`reach`), the wait between its first agent's answer and its second agent's send (`gap`, bridge runner),
from its last agent's answer to its last post (`last_post`), and from the burst to its last post (`wall`). The
bench's fan-out figure is the worst `wall`; the phases say which part of the turn made it. Run it alternately
with and without a change, in one sitting: this machine's noise moves single runs by a tenth of a second.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench import capacity
from bench.fakes_proc import Crew, Post, Span
from bench.load import burst, in_turn, mentions
from bench.run import parse
from bench.stage import relay, stage

PHASES = ("reach", "gap", "last_post", "wall")


def phases(began: float, spans: list[Span], posts: list[Post], crews: list[Crew]) -> dict[str, tuple[float, float]]:
    """(median, worst) seconds of each phase over the crews' turns that Letta and Slack saw whole (two agents
    asked, two posts); spans and posts from before `began` (an earlier burst's) are left out."""
    rows = []
    for crew in crews:
        ids = [agent_id for agent_id, _ in crew.agents]
        seen = {a: (s, e) for a, _, s, e in spans if a in ids and s >= began and e is not None}
        at = sorted(p.at for p in posts if p.channel == crew.channel and p.at >= began)
        if len(ids) < 2 or len(seen) < 2 or len(at) < 2:
            continue
        (first_sent, first_done), (second_sent, second_done) = seen[ids[0]], seen[ids[1]]
        rows.append((first_sent - began, second_sent - first_done, at[-1] - second_done, at[-1] - began))
    if not rows:
        return {}
    return {
        name: (round(statistics.median(r[i] for r in rows), 3), round(max(r[i] for r in rows), 3))
        for i, name in enumerate(PHASES)
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runner", choices=["bridge", "server"])
    args = parser.parse_args(argv)
    _, opts = parse(["--only", "fanout"])
    n = opts.fanout_channels
    limit = {"MAX_CONCURRENT_TURNS": str(n)}
    with stage("phases", args.runner, opts, channels=n + 1, delay=capacity._delays(args.runner, opts), env=limit) as st:
        before = capacity._warm(st)
        crews = st.crews[:-1]
        sent = mentions([c.channel for c in crews], n)
        began = time.monotonic()
        asyncio.run(burst(st.bridge.url, sent))
        st.fakes.wait_posts(before + 2 * n, 600)
        print("bridge  ", phases(began, st.fakes.call("letta_spans"), st.fakes.posts(before), crews), flush=True)
        st.fakes.wait_done([(m.channel, m.ts) for m in sent], 60)
        print("calls   ", st.fakes.call("call_census", began), flush=True)
        app = relay(st.fakes, crews, args.runner, opts.out / "phases" / "relay")
        app.start()
        try:
            asyncio.run(in_turn(app.url, mentions(["CWARMUP"], 3, "warm-up")))
            before = int(st.fakes.call("post_count"))
            began = time.monotonic()
            asyncio.run(burst(app.url, mentions([c.channel for c in crews], n)))
            st.fakes.wait_posts(before + 2 * n, 120)
            print("simplest", phases(began, st.fakes.call("letta_spans"), st.fakes.posts(before), crews), flush=True)
        finally:
            app.stop()


if __name__ == "__main__":
    main()
