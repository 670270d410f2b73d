"""Benchmarks: commands that print a table and write JSON (and plots) under bench/."""
