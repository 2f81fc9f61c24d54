"""Benchmarks of the harness against the raw tools it drives (entry point: bench/run.py)."""
