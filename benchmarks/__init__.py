"""Benchmarks: each ``bench_*.py`` measures against a named baseline in the same run and
prints ratios."""
