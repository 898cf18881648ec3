"""Run the benchmarks: `python -m bench.run` (about 6 minutes) or `python -m bench.run --quick` (a smoke run).

Every figure is a ratio or a percentile against a baseline measured in the same run. Results go to
bench/results.json (or --results); --readme rewrites the summary table in README.md and the full table with its
notes in docs/benchmarks.md; --render does only that, from an existing results file, without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import capacity, latency, store_bench
from bench.report import Figure, notes, replace_block, results, table, write_json
from bench.stage import RUNNERS, Options

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
DOCS = HERE.parent / "docs" / "benchmarks.md"

Step = Callable[[Options], list[Figure]]
STEPS: dict[str, Step] = {
    "startup": lambda o: [capacity.startup(o)],
    "store": lambda o: [store_bench.sqlite(o), store_bench.postgres(o)],
    "backlog": lambda o: [store_bench.backlog_sqlite(o), store_bench.backlog_postgres(o)],
    "burst": lambda o: [latency.burst(o)],
    "notices": lambda o: [capacity.notices(o)],
    "overhead": lambda o: [latency.overhead(o, r) for r in RUNNERS],
    "first-reply": lambda o: [latency.first_reply(o, r) for r in RUNNERS] + [latency.first_draft(o)],
    "busy": lambda o: [capacity.busy(o, r) for r in RUNNERS],
    "fanout": lambda o: (
        [capacity.fanout(o, r, o.max_concurrent_turns or o.fanout_channels) for r in RUNNERS]
        + ([capacity.fanout(o, "server", None)] if o.fanout_default_limit else [])
    ),
    "memory": lambda o: [capacity.memory(o)],
    "ack": latency.ack,
}
ORDER = (
    "ack",
    "burst",
    "overhead",
    "fanout",
    "busy",
    "notices",
    "first-reply",
    "memory",
    "startup",
    "store",
    "backlog",
)


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Options]:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (seconds, small sizes)")
    parser.add_argument("--only", nargs="+", choices=sorted(STEPS), help="run only these benchmarks")
    parser.add_argument(
        "--results",
        type=Path,
        help="where to write the JSON (default bench/results.json; bench/out/results-quick.json with --quick)",
    )
    parser.add_argument("--readme", action="store_true", help="rewrite the tables in README.md and docs/benchmarks.md")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite those tables from the results file; run nothing"
    )
    defaults = Options()
    for f in fields(Options):
        if f.name == "out":
            continue
        kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" ")[0], float)
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=kind,
            default=None,
            help=f"default {getattr(defaults, f.name)} (quick: {getattr(Options.quick(), f.name)})",
        )
    args = parser.parse_args(argv)
    opts = Options.quick() if args.quick else Options()
    for f in fields(Options):
        value = getattr(args, f.name, None)
        if value is not None and f.name != "out":
            setattr(opts, f.name, value)
    return args, opts


def publish(data: dict[str, Any]) -> None:
    """README shows the figures at a glance; docs/benchmarks.md shows them with how each was measured."""
    README.write_text(replace_block(README.read_text(), table(data)))
    DOCS.write_text(replace_block(DOCS.read_text(), table(data) + "\n\n" + notes(data)))
    print(f"tables updated: {README}, {DOCS}")


def settle(seconds: float = 2.0) -> None:
    """Before each benchmark: what the last one wrote is flushed to disk, and the machine is left a moment, so
    that one benchmark's writeback (the burst leaves thousands of events on disk) is not the next one's noise."""
    os.sync()
    time.sleep(seconds)


def main(argv: list[str] | None = None) -> int:
    args, opts = parse(argv)
    if args.render:
        publish(json.loads((args.results or HERE / "results.json").read_text()))
        return 0
    chosen = [name for name in ORDER if not args.only or name in args.only]
    figures: list[Figure] = []
    began = time.monotonic()
    for name in chosen:
        settle()
        step_began = time.monotonic()
        print(f"[bench] {name} ...", flush=True)
        new = STEPS[name](opts)
        for f in new:
            print(f"[bench]   {f.figure}: {f.measured} (target {f.target})", flush=True)
        print(f"[bench]   {time.monotonic() - step_began:.1f} s", flush=True)
        figures += new
    options = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()}
    options["benchmarks"] = chosen
    options["elapsed_s"] = round(time.monotonic() - began, 1)
    data = results(figures, "quick" if args.quick else "full", options)
    path = args.results or (opts.out / "results-quick.json" if args.quick else HERE / "results.json")
    write_json(data, path)
    block = table(data) + "\n\n" + notes(data)
    print("\n" + block + f"\n\nwritten to {path} in {options['elapsed_s']} s")
    if args.readme:
        publish(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
