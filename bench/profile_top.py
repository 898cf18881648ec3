"""Summarise a py-spy collapsed-stack file: where the sampled time went, by function (self and inclusive).

`python -m bench.profile_top bench/out/profiles/ack.txt [--match bridge/] [--top 25]`
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def top(stacks: list[tuple[list[str], int]], match: str = "", limit: int = 25) -> str:
    total = sum(c for _, c in stacks) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    idle = 0
    for frames, count in stacks:
        if frames and ("select (selectors.py" in frames[-1] or "_worker (concurrent" in frames[-1]):
            idle += count
        own[frames[-1]] += count
        for frame in set(frames):
            if match in frame:
                inclusive[frame] += count
    lines = [f"samples {total}, idle in select/wait {idle / total:.0%}", "", "self:"]
    lines += [f"  {c / total:6.1%}  {f}" for f, c in own.most_common(limit)]
    lines += ["", f"inclusive ({match or 'all'}):"]
    lines += [f"  {c / total:6.1%}  {f}" for f, c in inclusive.most_common(limit)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", type=Path)
    parser.add_argument("--match", default="")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(top(load(args.path), args.match, args.top))


if __name__ == "__main__":
    main()
