"""Benchmarks for the bridge: `python -m bench.run` (see README.md, "Benchmarks")."""
