"""Summarise a py-spy collapsed-stack file (`BENCH_PROFILE=<folder> python -m bench.run ...` writes them).

`python -m bench.profile_top bench/out/profiles/ack.txt [--match bridge/] [--top 25]` prints where the
sampled time went: by layer of the bridge, then by function (self and inclusive).
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from pathlib import Path

Stack = tuple[list[str], int]


def _any(*parts: str) -> Callable[[list[str]], bool]:
    return lambda frames: any(part in frame for frame in frames for part in parts)


def _idle(frames: list[str]) -> bool:
    leaf = frames[-1] if frames else ""
    return "select (selectors.py" in leaf or "_connection_worker_thread (aiosqlite/core.py:59)" in leaf


# First match wins, so a Slack call made while acknowledging counts as the acknowledgement.
LAYERS: list[tuple[str, Callable[[list[str]], bool]]] = [
    ("idle (waiting in select, or the SQLite thread waiting for work)", _idle),
    ("acknowledging (Bolt, decide, Relay.accept with its store write)", _any("Bridge.handle_slack")),
    ("Slack Web API calls (slack_sdk, aiohttp)", _any("slack_sdk/web")),
    ("Letta calls (aiohttp, pydantic)", _any("bridge/letta/client.py", "bridge/letta/transport.py")),
    ("store (bridge/store and the aiosqlite thread)", _any("bridge/store/", "aiosqlite")),
    ("logging", _any("logging/__init__")),
    ("event loop plumbing", lambda frames: any("asyncio/" in frame for frame in frames[-2:])),
    ("other", lambda frames: True),
]


def load(path: Path) -> list[Stack]:
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def layers(stacks: list[Stack]) -> dict[str, float]:
    """Share of samples per layer of the bridge."""
    total = sum(c for _, c in stacks) or 1
    counts: Counter[str] = Counter()
    for frames, count in stacks:
        counts[next(name for name, test in LAYERS if test(frames))] += count
    return {name: counts[name] / total for name, _ in LAYERS}


def top(stacks: list[Stack], match: str = "", limit: int = 25) -> str:
    total = sum(c for _, c in stacks) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
        for frame in set(frames):
            if match in frame:
                inclusive[frame] += count
    lines = [f"samples {total}", "", "by layer:"]
    lines += [f"  {share:6.1%}  {name}" for name, share in layers(stacks).items()]
    lines += ["", "self:"] + [f"  {c / total:6.1%}  {f}" for f, c in own.most_common(limit)]
    lines += ["", f"inclusive ({match or 'all'}):"]
    lines += [f"  {c / total:6.1%}  {f}" for f, c in inclusive.most_common(limit)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_top", description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--match", default="", help="only frames containing this in the inclusive list")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(top(load(args.path), args.match, args.top))


if __name__ == "__main__":
    main()
