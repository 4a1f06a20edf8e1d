"""Kernel benchmarks: the models' own speed, timed within one run (ratios, not absolute times)."""
