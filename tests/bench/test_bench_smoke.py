"""The benchmark's pure helpers: statistics, result formatting, the store workload, Letta-span arithmetic.

No timing is asserted here: the benchmarks themselves run with `python -m bench.run` (see README.md).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.capacity import letta_seconds, peak_overlap
from bench.fakes_proc import Crew, Post
from bench.latency import reply_lags
from bench.profile_top import layers, top
from bench.report import README_END, README_START, Figure, not_measured, replace_block, results, table, write_json
from bench.run import parse
from bench.stats import in_order, percentile, ratio, summary
from bench.store_bench import events

CREW = Crew("C1", "group-1", (("agent-a", "alice"), ("agent-b", "bob")))


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1 and percentile(values, 100) == 100
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_scales_to_milliseconds_and_ratio_never_hides_a_zero_baseline() -> None:
    s = summary([0.001, 0.002, 0.003], scale=1000)
    assert s["count"] == 3 and s["p50"] == 2.0 and s["min"] == 1.0 and s["max"] == 3.0 and s["mean"] == 2.0
    assert summary([]) == {"count": 0}
    assert ratio(3.0, 2.0) == 1.5
    assert math.isinf(ratio(1.0, 0.0))
    assert in_order(["a", "b"], ["a", "b"]) and not in_order(["a", "b"], ["b", "a"])


def test_results_table_and_readme_block(tmp_path: Path) -> None:
    figures = [
        Figure("ack_p99", "Acknowledgement p99", "< 50 ms", "12.00 ms", True, "a | note"),
        Figure("fanout", "Fan-out", "≤ 1.15x", "2.37x", False),
        not_measured("first_reply", "Time to first reply", "≤ 100 ms", "streaming not implemented yet"),
    ]
    data = results(figures, "quick", {"ack_seconds": 3.0})
    assert data["summary"] == {"passed": 1, "failed": 1, "not_measured": 1}
    assert data["machine"]["cores"] >= 1
    out = tmp_path / "results.json"
    write_json(data, out)
    assert json.loads(out.read_text())["figures"][2]["passed"] is None

    rendered = table(data)
    lines = rendered.splitlines()
    assert lines[0] == "| figure | target | measured | result | cores |"
    assert lines[2].endswith(f"| pass | {data['machine']['cores']} |")
    assert "| FAIL |" in lines[3]
    assert "not measured: streaming not implemented yet | n/a |" in lines[4]

    readme = f"intro\n{README_START}\nold table\n{README_END}\noutro\n"
    updated = replace_block(readme, rendered)
    assert updated.startswith("intro\n") and updated.endswith("outro\n") and "old table" not in updated
    assert replace_block(updated, "again").count(README_START) == 1
    with pytest.raises(ValueError):
        replace_block("no markers", rendered)


def test_store_workload_repeats_come_after_their_originals() -> None:
    batch = events(1000, 0.2)
    assert len(batch) == 1000
    assert sum(e.duplicate for e in batch) == 200
    seen_events: set[str] = set()
    seen_messages: set[str] = set()
    for event in batch:
        is_repeat = event.turn.event_id in seen_events or event.turn.message_ts in seen_messages
        assert is_repeat == event.duplicate
        seen_events.add(event.turn.event_id)
        seen_messages.add(event.turn.message_ts)
    assert events(1000, 0.2) == batch  # the same workload every run


def test_letta_span_arithmetic() -> None:
    spans = [
        ("agent-a", "t", 0.0, 2.0),
        ("agent-b", "t", 2.1, 4.1),
        ("agent-x", "t", 1.0, 3.0),
        ("agent-a", "t", 5.0, None),  # still running
    ]
    assert letta_seconds(spans, CREW) == pytest.approx(4.0)
    assert peak_overlap(spans) == 2
    posts = [Post("C1", "1.1", "alice", 2.05), Post("C1", "1.1", "bob", 4.2), Post("C2", "1.1", "alice", 2.01)]
    assert reply_lags(spans, posts, [CREW]) == [pytest.approx(0.05)]


def test_quick_options_and_the_not_measured_figure() -> None:
    _, opts = parse(["--quick", "--ack-seconds", "1.5", "--max-concurrent-turns", "8"])
    assert opts.ack_seconds == 1.5 and opts.max_concurrent_turns == 8 and opts.overhead_turns < 200
    _, full = parse([])
    assert full.ack_rate == 200 and full.ack_seconds == 30 and full.fanout_channels == 200
    assert full.memory_turns == 1000 and full.store_events == 10_000
    figure = not_measured("store_postgres", "Store, Postgres", "report events/s", "no Postgres here")
    assert figure.passed is None and figure.measured.startswith("not measured")


def test_profile_summary_reads_collapsed_stacks() -> None:
    stacks = [(["main (a.py:1)", "work (b.py:2)"], 3), (["main (a.py:1)", "select (selectors.py:468)"], 1)]
    text = top(stacks, match="b.py")
    assert "samples 4" in text
    assert "75.0%  work (b.py:2)" in text
    shares = layers(stacks)
    assert shares["other"] == 0.75 and sum(shares.values()) == 1.0
    assert next(iter(shares)).startswith("idle") and shares[next(iter(shares))] == 0.25
