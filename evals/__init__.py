"""Reasoning benchmarks scored across low / medium / high effort."""
