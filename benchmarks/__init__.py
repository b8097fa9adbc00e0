"""Benchmarks: run with ``python -m benchmarks.throughput`` (see benchmarks/README.md)."""
